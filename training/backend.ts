// Chooses the TF.js backend for this process.
//
// auto: 'tensorflow' when @tensorflow/tfjs-node loads, else 'wasm' (XNNPACK, SIMD) with the kernels
// tfjs-backend-wasm lacks registered by us, else the pure-JS 'cpu' backend. tfjs-node is an optional
// accelerator, found in node_modules (a plain npm install, where its install script can download
// libtensorflow) or else in the private build `npm run setup:native` makes under .tools/tfjs-node (its
// binding compiled against TensorFlow's PyPI wheel). Its tensorflow backend computes with TensorFlow's own
// thread pools, pinned to a fixed size by TENSORFLOW_ENV_DEFAULTS so that its results do not depend on the machine.
//
// The wasm backend runs single-threaded in Node: tfjs-backend-wasm 4.22 disables its threaded build there
// (WASM_HAS_MULTITHREAD_SUPPORT is false under IS_NODE, tfjs #3830), and forcing it fails because Node
// workers cannot start from the blob: URL the backend builds. One thread also keeps results bitwise
// reproducible run to run, which the resume-equals-uninterrupted guarantee relies on.
//
// Backends are loaded lazily, so importing this module changes nothing until initBackend() runs.
import { DurableTrainError } from '../spec/errors';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import './tfjs-quiet';
import { registerTensorflowKernels } from './kernels/tensorflow';
import { registerWasmConv2DBackpropFilter } from './kernels/wasm-conv2d-backprop-filter';
import { registerWasmNoCopy } from './kernels/wasm-no-copy';
import { registerWasmMaxPoolGrad } from './kernels/wasm-max-pool-grad';
import { registerWasmSum } from './kernels/wasm-sum';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  name: BackendName;
  /** The tfjs version (tf.version.tfjs). */
  version: string;
  /** Threads the backend computes with, when we know: 1 for cpu and wasm in Node. */
  threads?: number;
  /** Why auto did not get an earlier choice, when that was a failure rather than an absent optional package. */
  fallbackReason?: string;
}

export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];
export const BACKEND_ENV_VAR = 'DURABLE_TRAIN_BACKEND';

/** A backend that cannot be used here; `optional` marks an absent optional package (not worth reporting). */
class BackendUnavailableError extends DurableTrainError {
  readonly code = 'unavailable' as const;

  constructor(
    message: string,
    readonly optional = false,
  ) {
    super(message);
  }
}

let current: BackendInfo | null = null;
/** The choice made from auto or DURABLE_TRAIN_BACKEND, kept apart from `current` once a run asks for another. */
let processDefault: BackendInfo | null = null;
const announced = new Set<BackendName>();
/** Set while useBackend has a run's backend other than the default active. */
let switchedForRun = false;
let wasmSimd: boolean | undefined;
// Serializes initBackend calls: tf.setBackend is global and async.
let queue: Promise<unknown> = Promise.resolve();

export function currentBackend(): BackendInfo | null {
  return current;
}

/**
 * Forgets the choice, so that the next initBackend() chooses afresh; tf's active backend is left as it is.
 * For tests that share a process with code expecting initBackend() to pick as in production.
 */
export function resetBackendChoice(): void {
  current = null;
  processDefault = null;
  switchedForRun = false;
}

/**
 * Selects and initializes the backend. Idempotent: once a backend is chosen, 'auto' and the same name
 * return it unchanged; another explicit name switches to it. An explicit name that cannot be loaded throws.
 */
export function initBackend(preferred?: 'auto' | BackendName): Promise<BackendInfo> {
  const run = queue.then(() => init(preferred));
  queue = run.catch(() => undefined);
  return run;
}

async function init(preferred: 'auto' | BackendName | undefined): Promise<BackendInfo> {
  const choice = parseChoice(preferred);
  if (choice === 'auto' && switchedForRun) return useFor(null);
  if (current && (choice === 'auto' || choice === current.name) && tf.getBackend() === current.name) {
    if (choice === 'auto') processDefault ??= current;
    return current;
  }

  let info: BackendInfo;
  if (choice === 'auto') {
    const reasons: string[] = [];
    info = await firstAvailable(['tensorflow', 'wasm', 'cpu'], reasons);
    if (reasons.length > 0) info.fallbackReason = reasons.join('; ');
  } else {
    try {
      info = await activate(choice);
    } catch (err) {
      throw new Error(`durable-train: tfjs backend '${choice}' is unavailable: ${messageOf(err)}`);
    }
  }
  current = info;
  if (preferred === undefined || preferred === 'auto') processDefault = info;
  // Once per backend: a training process that switches between runs' backends says so once.
  if (!announced.has(info.name)) console.error(`durable-train: tfjs backend ${describe(info)}`);
  announced.add(info.name);
  return info;
}

/** Whether this process chooses its backend itself (DURABLE_TRAIN_BACKEND unset or auto), not by an operator. */
export function backendIsAuto(env: NodeJS.ProcessEnv = process.env): boolean {
  return envChoice(env) === 'auto';
}

/** DURABLE_TRAIN_BACKEND as given (trimmed, lower case), 'auto' when unset or empty. */
const envChoice = (env: NodeJS.ProcessEnv): string => env[BACKEND_ENV_VAR]?.trim().toLowerCase() || 'auto';

/**
 * Makes `name` the active backend for one run's work (null: the process's default choice), in a process that computes
 * for one run at a time (a training process, or a worker with one activity slot): each run then computes on the
 * backend it started on, recorded in its checkpoints, whatever the process computed before. Tensors of other runs stay
 * on their backend (tfjs moves data between backends only when a kernel of another reads it), so a warm trainer goes
 * on where it was. The next initBackend() without a name returns to the process's default.
 */
export function useBackend(name: BackendName | null): Promise<BackendInfo> {
  const run = queue.then(() => useFor(name));
  queue = run.catch(() => undefined);
  return run;
}

async function useFor(name: BackendName | null): Promise<BackendInfo> {
  const dflt = processDefault ?? (await init(undefined));
  if (name === null || name === dflt.name) {
    if (tf.getBackend() !== dflt.name && !(await tf.setBackend(dflt.name)))
      throw new Error(`durable-train: tf.setBackend('${dflt.name}') failed`);
    current = dflt;
    switchedForRun = false;
    return dflt;
  }
  const info = await init(name);
  switchedForRun = true;
  return info;
}

function parseChoice(preferred: string | undefined): 'auto' | BackendName {
  const raw = preferred?.toLowerCase() ?? envChoice(process.env);
  if (raw === 'auto' || (BACKEND_NAMES as readonly string[]).includes(raw)) return raw as 'auto' | BackendName;
  const source = preferred === undefined ? ` (from ${BACKEND_ENV_VAR})` : '';
  throw new Error(
    `durable-train: unknown tfjs backend '${raw}'${source}; expected one of auto, ${BACKEND_NAMES.join(', ')}`,
  );
}

async function firstAvailable(names: BackendName[], reasons: string[]): Promise<BackendInfo> {
  for (const name of names) {
    try {
      return await activate(name);
    } catch (err) {
      if (!(err instanceof BackendUnavailableError && err.optional)) reasons.push(`${name}: ${messageOf(err)}`);
    }
  }
  throw new Error(`durable-train: no tfjs backend could be initialized (${reasons.join('; ')})`);
}

async function activate(name: BackendName): Promise<BackendInfo> {
  const info: BackendInfo = { name, version: tf.version.tfjs };
  switch (name) {
    case 'tensorflow':
      loadTfjsNode();
      break;
    case 'wasm':
      loadWasm();
      break;
    case 'cpu':
      break;
  }
  // setBackend logs and returns false (rather than throwing) when the factory fails.
  if (!(await tf.setBackend(name)))
    throw new BackendUnavailableError(`tf.setBackend('${name}') failed to initialize it`);
  await tf.ready();
  if (name === 'wasm') {
    registerWasmConv2DBackpropFilter();
    registerWasmNoCopy();
    registerWasmMaxPoolGrad();
    registerWasmSum();
    info.threads = wasmThreads();
    wasmSimd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  } else if (name === 'tensorflow') {
    registerTensorflowKernels();
  } else if (name === 'cpu') {
    info.threads = 1;
  }
  return info;
}

/** Where `npm run setup:native` puts its tfjs-node, relative to the project root. */
export const PRIVATE_TFJS_NODE = path.join('.tools', 'tfjs-node', 'node_modules', '@tensorflow', 'tfjs-node');

/** Overrides where the private tfjs-node build is looked for (a directory; one without package.json: none). */
export const TFJS_NODE_DIR_ENV_VAR = 'DURABLE_TRAIN_TFJS_NODE_DIR';

/** The private tfjs-node build, looked for in the directories above this file (source or dist/), or null. */
export function privateTfjsNodeDir(): string | null {
  const override = process.env[TFJS_NODE_DIR_ENV_VAR];
  if (override) return fs.existsSync(path.join(override, 'package.json')) ? path.resolve(override) : null;
  for (let dir = __dirname; ;) {
    const candidate = path.join(dir, PRIVATE_TFJS_NODE);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/**
 * TensorFlow settings read once, when libtensorflow loads, so they are set before it does; each is left alone
 * when already set in the environment. Measured on tensorflow-cpu 2.21 (mnist-cnn, 30 Adam steps, in one process
 * and across processes): every setting gave the same weights run after run, but the weights depend on the
 * intra-op thread count (TensorFlow splits reductions by the pool's size, and its default size is the number of
 * cores) and on oneDNN being on or off. So the pool size is pinned rather than taken from the machine: a run
 * resumed on a worker with another core count then computes the same sums. Workers of one run must agree on
 * these values (set them the same everywhere, or leave them to these defaults). TF_DETERMINISTIC_OPS changed
 * nothing on CPU and cost nothing measurable; it is on as a guard against any nondeterministic kernel.
 */
export const TENSORFLOW_ENV_DEFAULTS: Readonly<Record<string, string>> = {
  TF_NUM_INTRAOP_THREADS: '2',
  TF_NUM_INTEROP_THREADS: '1',
  TF_DETERMINISTIC_OPS: '1',
  // Quiet TensorFlow's INFO lines (oneDNN and CPU feature notices) on the worker's stderr.
  TF_CPP_MIN_LOG_LEVEL: '1',
};

function applyTensorflowDefaults(): void {
  for (const [k, v] of Object.entries(TENSORFLOW_ENV_DEFAULTS)) if (process.env[k] === undefined) process.env[k] = v;
}

function loadTfjsNode(): void {
  applyTensorflowDefaults();
  try {
    // A plain require so that its absence is an ordinary, silent MODULE_NOT_FOUND.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-node');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const absent = e.code === 'MODULE_NOT_FOUND' && /'@tensorflow\/tfjs-node'/.test(e.message);
    if (!absent) throw new BackendUnavailableError(`@tensorflow/tfjs-node failed to load: ${messageOf(err)}`);
    const dir = privateTfjsNodeDir();
    if (!dir) {
      throw new BackendUnavailableError(
        '@tensorflow/tfjs-node is not installed (run `npm run setup:native` to build it from the registries)',
        true,
      );
    }
    try {
      // Its require('@tensorflow/tfjs') resolves up the tree to the project's own tfjs (the setup removes the
      // private copies), so it registers the backend with the engine this process uses.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require(dir);
    } catch (err2) {
      throw new BackendUnavailableError(
        `the tfjs-node built by setup:native (${dir}) failed to load: ${messageOf(err2)}; rerun npm run setup:native`,
      );
    }
  }
  if (!tf.findBackendFactory('tensorflow')) {
    throw new BackendUnavailableError(
      '@tensorflow/tfjs-node loaded but registered no tensorflow backend with this @tensorflow/tfjs (version mismatch?)',
    );
  }
}

type WasmModule = typeof import('@tensorflow/tfjs-backend-wasm');
let wasmModule: WasmModule | null = null;

function loadWasm(): WasmModule {
  if (wasmModule) return wasmModule;
  let mod: WasmModule;
  try {
    // Lazy: importing it registers 'wasm' as the highest-priority backend, which must not happen on import.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('@tensorflow/tfjs-backend-wasm') as WasmModule;
  } catch (err) {
    throw new BackendUnavailableError(`@tensorflow/tfjs-backend-wasm failed to load: ${messageOf(err)}`);
  }
  // Point at the package's own dist/ so the .wasm binaries are found however this code is run or bundled.
  const dist =
    path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;
  mod.setWasmPaths(dist);
  wasmModule = mod;
  return mod;
}

function wasmThreads(): number | undefined {
  try {
    return wasmModule?.getThreadsCount();
  } catch {
    return undefined;
  }
}

function describe(info: BackendInfo): string {
  const parts = [`tfjs ${info.version}`];
  if (info.name === 'wasm' && wasmSimd !== undefined) parts.push(wasmSimd ? 'simd' : 'no simd');
  if (info.threads !== undefined) parts.push(`${info.threads} thread${info.threads === 1 ? '' : 's'}`);
  const fallback = info.fallbackReason ? `; fell back: ${info.fallbackReason}` : '';
  return `${info.name} (${parts.join(', ')})${fallback}`;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (err && typeof err === 'object' && 'message' in err) return String((err as { message: unknown }).message);
  return String(err);
}
