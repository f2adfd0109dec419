// Training throughput per TF.js backend, every available backend measured in this one process:
//   - standalone models: samples/s of SGD steps (forward, backward, update) at batch 64 for a 784-128-10 MLP
//     and a small CNN, with tfjs's own gradients (this measures backends, not training/'s model code);
//   - trainer: the mnist-cnn as durable-train trains it (training/'s Trainer: Adam, dropout 0.25, our conv
//     gradients), batch 64, beside the same network in Keras on TensorFlow-CPU (bench/keras_reference.py, run
//     from the tool venv that `npm run setup:native` fills), with the ratio of each backend to Keras.
// Then whether the tensorflow backend's weights are reproducible under each TensorFlow setting and what each
// costs (tfDeterminismExperiment), and whether the wasm backend's threaded build would help (wasmThreadsExperiment).
//
//   npx tsc -p tsconfig.json && node dist/bench/backends.js [--budget-ms 8000] [--no-threads] [--no-tf-determinism]
//   node dist/bench/backends.js --vs-keras 7 [--budget-ms 6000]   (only the Trainer-to-Keras ratios, see vsKeras;
//     each backend at its default numerics version, or DURABLE_TRAIN_NUMERICS=1|2 for all, recorded per round)
//
// Prints one JSON object on stdout; progress and tfjs's own messages go to stderr.
import { execFile } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import * as tf from '@tensorflow/tfjs';
import type { RunSpec } from '../spec/types';
import { initBackend, TENSORFLOW_ENV_DEFAULTS, type BackendName } from '../training/backend';
import { Trainer as DtTrainer } from '../training/trainer';

const BATCH = 64;

type ModelKind = 'mlp' | 'cnn';

interface Model {
  vars: tf.Variable[];
  logits(x: tf.Tensor): tf.Tensor2D;
  inputShape: number[];
}

/** Deterministic uniform values in [-scale, scale): same weights and data on every backend and run. */
function uniform(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}

function glorot(shape: number[], fanIn: number, fanOut: number, seed: number): tf.Variable {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return tf.variable(tf.tensor(uniform(tf.util.sizeFromShape(shape), seed, limit), shape));
}

function buildModel(kind: ModelKind): Model {
  if (kind === 'mlp') {
    const w1 = glorot([784, 128], 784, 128, 1);
    const b1 = tf.variable(tf.zeros([128]));
    const w2 = glorot([128, 10], 128, 10, 2);
    const b2 = tf.variable(tf.zeros([10]));
    return {
      vars: [w1, b1, w2, b2],
      inputShape: [BATCH, 784],
      logits: (x) => tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x as tf.Tensor2D, w1), b1)), w2), b2) as tf.Tensor2D,
    };
  }
  // conv 3x3x32 -> pool -> conv 3x3x64 -> pool -> dense 128 -> 10 ('valid': 28 -> 26 -> 13 -> 11 -> 5).
  const c1 = glorot([3, 3, 1, 32], 9, 9 * 32, 3);
  const cb1 = tf.variable(tf.zeros([32]));
  const c2 = glorot([3, 3, 32, 64], 9 * 32, 9 * 64, 4);
  const cb2 = tf.variable(tf.zeros([64]));
  const d1 = glorot([5 * 5 * 64, 128], 1600, 128, 5);
  const db1 = tf.variable(tf.zeros([128]));
  const d2 = glorot([128, 10], 128, 10, 6);
  const db2 = tf.variable(tf.zeros([10]));
  return {
    vars: [c1, cb1, c2, cb2, d1, db1, d2, db2],
    inputShape: [BATCH, 28, 28, 1],
    logits: (x) => {
      let h = tf.relu(tf.add(tf.conv2d(x as tf.Tensor4D, c1 as tf.Tensor4D, 1, 'valid'), cb1)) as tf.Tensor4D;
      h = tf.maxPool(h, 2, 2, 'valid');
      h = tf.relu(tf.add(tf.conv2d(h, c2 as tf.Tensor4D, 1, 'valid'), cb2)) as tf.Tensor4D;
      h = tf.maxPool(h, 2, 2, 'valid');
      const flat = tf.reshape(h, [BATCH, 5 * 5 * 64]) as tf.Tensor2D;
      return tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(flat, d1 as tf.Tensor2D), db1)), d2), db2) as tf.Tensor2D;
    },
  };
}

interface Trainer {
  step(): number;
  weightsHash(): string;
  dispose(): void;
}

function makeTrainer(kind: ModelKind): Trainer {
  const model = buildModel(kind);
  const x = tf.tensor(uniform(tf.util.sizeFromShape(model.inputShape), 7, 1), model.inputShape);
  const labels = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: BATCH }, (_, i) => (i * 7) % 10),
      'int32',
    ),
    10,
  );
  const optimizer = tf.train.sgd(0.01);
  return {
    step: () => {
      const cost = optimizer.minimize(
        () => tf.losses.softmaxCrossEntropy(labels, model.logits(x)) as tf.Scalar,
        true,
        model.vars,
      );
      const loss = cost!.dataSync()[0]; // also waits for the step to finish on any backend
      cost!.dispose();
      return loss;
    },
    weightsHash: () => {
      const h = createHash('sha256');
      for (const v of model.vars) h.update(Buffer.from((v.dataSync() as Float32Array).buffer));
      return h.digest('hex');
    },
    dispose: () => {
      optimizer.dispose();
      tf.dispose([x, labels, ...model.vars]);
    },
  };
}

interface Measurement {
  backend: string;
  model: ModelKind;
  samplesPerSec: number;
  msPerStep: number;
  steps: number;
  firstStepMs: number;
  loss: number;
}

/** One warm-up step (kernel setup, XNNPACK operator creation), then steps until budgetMs or maxSteps. */
function measure(backend: string, kind: ModelKind, budgetMs: number, maxSteps = 50): Measurement {
  const trainer = makeTrainer(kind);
  try {
    let t = performance.now();
    trainer.step();
    const firstStepMs = performance.now() - t;
    let steps = 0;
    let loss = NaN;
    t = performance.now();
    while (steps < maxSteps && (steps === 0 || performance.now() - t < budgetMs)) {
      loss = trainer.step();
      steps++;
    }
    const ms = (performance.now() - t) / steps;
    return {
      backend,
      model: kind,
      samplesPerSec: round((BATCH * 1000) / ms),
      msPerStep: round(ms),
      steps,
      firstStepMs: round(firstStepMs),
      loss: round(loss, 4),
    };
  } finally {
    trainer.dispose();
  }
}

/** Weight hash after a fixed number of steps: equal across runs means bitwise reproducible training. */
function fixedRunHash(kind: ModelKind, steps: number): string {
  const trainer = makeTrainer(kind);
  try {
    for (let i = 0; i < steps; i++) trainer.step();
    return trainer.weightsHash();
  } finally {
    trainer.dispose();
  }
}

function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// The mnist-cnn as training/ trains it, and Keras's figure for the same network.
// ---------------------------------------------------------------------------------------------------------

const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

function trainerSpec(batchSize = BATCH): RunSpec {
  return {
    model: 'mnist-cnn',
    dataset: { name: 'mnist', trainLimit: 6400, testLimit: 100 },
    epochs: 10,
    batchSize,
    seed: 7,
    dropout: 0.25,
    optimizer: { name: 'adam', learningRate: 1e-3 },
    chunkSteps: 100,
    checkpoint: { storage: 'file://unused' },
  } as RunSpec;
}

interface TrainerMeasurement {
  backend: string;
  samplesPerSec: number;
  msPerStep: number;
  /** CPU time of the whole process (every thread) per step: steadier than wall time on a shared machine. */
  cpuMsPerStep: number;
  steps: number;
  firstStepMs: number;
  /** The gradient math measured (training/numerics.ts): DURABLE_TRAIN_NUMERICS, else the backend's default. */
  numerics: number;
}

/** Trainer steps (no epoch end inside: 100 steps per epoch) after one warm-up step, until budgetMs. */
async function measureTrainer(backend: string, budgetMs: number, maxSteps = 60): Promise<TrainerMeasurement> {
  const t = await DtTrainer.create(trainerSpec());
  try {
    let t0 = performance.now();
    await t.train({ maxSteps: 1 });
    const firstStepMs = performance.now() - t0;
    let steps = 0;
    t0 = performance.now();
    const c0 = process.cpuUsage();
    while (steps < maxSteps && (steps === 0 || performance.now() - t0 < budgetMs)) {
      await t.train({ maxSteps: 5 });
      steps += 5;
    }
    const ms = (performance.now() - t0) / steps;
    const cpu = process.cpuUsage(c0);
    return {
      backend,
      samplesPerSec: round((BATCH * 1000) / ms),
      msPerStep: round(ms),
      cpuMsPerStep: round((cpu.user + cpu.system) / 1000 / steps),
      steps,
      firstStepMs: round(firstStepMs),
      numerics: t.info.numerics,
    };
  } finally {
    t.dispose();
  }
}

async function kerasReference(budgetMs: number): Promise<Record<string, unknown>> {
  const python = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'python');
  const script = path.join(PROJECT_ROOT, 'bench', 'keras_reference.py');
  if (!fs.existsSync(python)) return { error: `no tool venv at ${python}: run npm run setup:native` };
  try {
    const { stdout } = await promisify(execFile)(python, [script, '--seconds', String(Math.max(budgetMs / 1000, 1))], {
      timeout: 600_000,
      maxBuffer: 1 << 24,
    });
    return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  } catch (err) {
    return {
      error: `${script} failed (is tensorflow-cpu in the tool venv? npm run setup:native): ${(err as Error).message.slice(0, 500)}`,
    };
  }
}

// ---------------------------------------------------------------------------------------------------------
// tensorflow backend: reproducibility and cost per TensorFlow setting. Each setting runs in two fresh
// processes (TensorFlow reads these variables once, when it loads); each process trains the mnist-cnn
// (training/'s Trainer) DET_STEPS steps twice from the same seed and reports both weight hashes.
// ---------------------------------------------------------------------------------------------------------

const DET_STEPS = 30;

const TF_SETTINGS: Record<string, Record<string, string>> = {
  // What training/backend.ts sets when the environment does not.
  pinned: { ...TENSORFLOW_ENV_DEFAULTS },
  // TensorFlow's own defaults: pools sized by the core count, oneDNN on.
  tfDefault: { TF_NUM_INTRAOP_THREADS: '0', TF_NUM_INTEROP_THREADS: '0', TF_DETERMINISTIC_OPS: '0' },
  oneThread: { ...TENSORFLOW_ENV_DEFAULTS, TF_NUM_INTRAOP_THREADS: '1' },
  oneDnnOff: { ...TENSORFLOW_ENV_DEFAULTS, TF_ENABLE_ONEDNN_OPTS: '0' },
  oneThreadOneDnnOff: { ...TENSORFLOW_ENV_DEFAULTS, TF_NUM_INTRAOP_THREADS: '1', TF_ENABLE_ONEDNN_OPTS: '0' },
};

async function tfDeterminismChild(): Promise<void> {
  await initBackend('tensorflow');
  const runs: Array<{ hash: string; msPerStep: number }> = [];
  for (let r = 0; r < 2; r++) {
    const t = await DtTrainer.create(trainerSpec());
    try {
      await t.train({ maxSteps: 1 });
      const t0 = performance.now();
      await t.train({ maxSteps: DET_STEPS - 1 });
      runs.push({ hash: t.weightsSha256(), msPerStep: round((performance.now() - t0) / (DET_STEPS - 1)) });
    } finally {
      t.dispose();
    }
  }
  process.stdout.write(JSON.stringify(runs) + '\n');
}

async function tfDeterminismExperiment(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const hashes: Record<string, string> = {};
  for (const [name, env] of Object.entries(TF_SETTINGS)) {
    console.error(`bench: tensorflow determinism, ${name} ...`);
    const procs: Array<Array<{ hash: string; msPerStep: number }>> = [];
    for (let p = 0; p < 2; p++) {
      const { stdout } = await promisify(execFile)(process.execPath, [__filename, '--child-tf-determinism'], {
        env: { ...process.env, ...env, DURABLE_TRAIN_BACKEND: 'tensorflow' },
        timeout: 600_000,
        maxBuffer: 1 << 24,
      });
      procs.push(JSON.parse(stdout.trim().split('\n').pop()!) as Array<{ hash: string; msPerStep: number }>);
    }
    const all = procs.flat();
    hashes[name] = all[0].hash;
    out[name] = {
      env,
      identicalInProcess: procs.every((r) => r[0].hash === r[1].hash),
      identicalAcrossProcesses: procs[0][0].hash === procs[1][0].hash,
      weightsSha256: all[0].hash.slice(0, 16),
      msPerStepMedian: round([...all.map((r) => r.msPerStep)].sort((a, b) => a - b)[Math.floor(all.length / 2)]),
    };
  }
  return {
    steps: DET_STEPS,
    settings: out,
    sameWeightsAsPinned: Object.fromEntries(Object.entries(hashes).map(([k, h]) => [k, h === hashes.pinned])),
  };
}

// ---------------------------------------------------------------------------------------------------------
// wasm multithreading experiment. tfjs-backend-wasm 4.22 never selects its threaded build in Node
// (WASM_HAS_MULTITHREAD_SUPPORT is false when IS_NODE, tfjs #3830); forcing the flag fails because its
// pthread workers are started from blob: URLs, which Node's Worker rejects. Even then it would use
// min(requested, logical CPUs / 2) threads, i.e. 1 on a 2-CPU machine. To answer "would threads help here",
// a child process serves those blobs from temp files and reports 4 CPUs to the module, then measures.
// Bench only: too fragile for training code.
// ---------------------------------------------------------------------------------------------------------

/** Returns a function that restores the global Blob once the backend is up. */
function installThreadedWasmShim(threads: number): () => void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-train-wasm-mt-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const realCpus = os.cpus();
  const fakeCount = Math.max(realCpus.length, 2 * threads);
  // The module object itself: the `import * as os` namespace is read-only.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('os') as { cpus: () => os.CpuInfo[] }).cpus = () =>
    Array.from({ length: fakeCount }, (_, i) => realCpus[i % realCpus.length]);

  // Blobs the backend builds (worker script, main script) keep their text so we can write them out.
  class TextBlob {
    readonly text: string;
    constructor(parts: string[]) {
      this.text = parts.join('');
    }
  }
  const g = globalThis as unknown as { Blob: unknown };
  const realBlob = g.Blob;
  g.Blob = TextBlob;
  let n = 0;
  const realCreate = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (b: unknown) => {
    if (!(b instanceof TextBlob)) return realCreate(b as Blob);
    let text = b.text;
    if (text.includes('importScripts')) {
      // The worker receives the main script as a cloned TextBlob (a plain object); the main script is a
      // rollup-bundled function that refers to the bundle's module-level requires.
      const prelude =
        'var require$$0=require("fs"),require$$1=require("path"),require$$3=require("perf_hooks"),' +
        'require$$4=require("os"),commonjsGlobal=globalThis;';
      text =
        `URL.createObjectURL=(o)=>{const f=require('path').join(${JSON.stringify(dir)},` +
        `'main-'+require('worker_threads').threadId+'.js');` +
        `require('fs').writeFileSync(f,${JSON.stringify(prelude)}+o.text);return f;};URL.revokeObjectURL=()=>{};\n` +
        text;
    }
    const file = path.join(dir, `blob-${n++}.js`);
    fs.writeFileSync(file, text);
    return file;
  };
  // The package registers the flag, so load it first.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  return () => {
    g.Blob = realBlob;
  };
}

async function threadedChild(threads: number, budgetMs: number): Promise<void> {
  const restoreBlob = installThreadedWasmShim(threads);
  const info = await initBackend('wasm');
  restoreBlob();
  const out = {
    threadsRequested: threads,
    threads: info.threads,
    results: (['mlp', 'cnn'] as const).map((k) => measure(`wasm-threaded-${info.threads}`, k, budgetMs)),
    cnnHash: fixedRunHash('cnn', 3),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0); // pthread workers keep the event loop alive
}

async function wasmThreadsExperiment(budgetMs: number): Promise<Record<string, unknown>> {
  const run = async (threads: number) => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [__filename, '--child-wasm-threads', String(threads), '--budget-ms', String(budgetMs)],
      { timeout: 600_000, maxBuffer: 1 << 24 },
    );
    return JSON.parse(stdout.trim().split('\n').pop()!) as {
      threads: number;
      results: Measurement[];
      cnnHash: string;
    };
  };
  const forced = await probeForcedThreads();
  try {
    const one = await run(1);
    const two = await run(2);
    const twoAgain = await run(2);
    return {
      availableInNode: false,
      whyNot: forced,
      viaShim: {
        results: [...one.results, ...two.results],
        speedup2vs1: Object.fromEntries(
          two.results.map((r, i) => [r.model, round(r.samplesPerSec / one.results[i].samplesPerSec, 2)]),
        ),
        deterministic2Threads: two.cnnHash === twoAgain.cnnHash,
        sameWeights1vs2Threads: one.cnnHash === two.cnnHash,
      },
    };
  } catch (err) {
    return { availableInNode: false, whyNot: forced, viaShim: { error: (err as Error).message.slice(0, 500) } };
  }
}

/** What happens when the threaded build is simply forced on, without the shim. */
async function probeForcedThreads(): Promise<string> {
  const script =
    `const tf=require('@tensorflow/tfjs');require('@tensorflow/tfjs-backend-wasm');` +
    `tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT',true);` +
    `tf.setBackend('wasm').then(ok=>{console.log('setBackend '+ok);process.exit(0)},e=>{console.log(String(e));process.exit(0)})`;
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['-e', script], {
      cwd: path.resolve(__dirname, '..', '..'),
      timeout: 60_000,
    });
    const reason = /ERR_WORKER_PATH[^\n]*/.exec(stderr)?.[0] ?? stderr.split('\n').find((l) => l.trim()) ?? '';
    return `forcing WASM_HAS_MULTITHREAD_SUPPORT: ${stdout.trim()}; ${reason}`.slice(0, 400);
  } catch (err) {
    return `probe failed: ${(err as Error).message.slice(0, 300)}`;
  }
}

// ---------------------------------------------------------------------------------------------------------
// --vs-keras N: the goal as a ratio that survives a busy machine. N rounds, each running Keras and then
// the mnist-cnn Trainer on every available backend (tensorflow, wasm), each in a fresh process, one after the
// other; the ratio to Keras is taken within each round (so a load change between rounds cancels), and reported
// as min / median / max over the rounds.
// ---------------------------------------------------------------------------------------------------------

async function trainerChild(backend: BackendName, budgetMs: number): Promise<void> {
  await initBackend(backend);
  // At most 95 steps after the warm-up one: all inside the first epoch (100 steps), so no evaluation is timed.
  process.stdout.write(JSON.stringify(await measureTrainer(backend, budgetMs, 95)) + '\n');
}

function spread(values: number[]): { min: number; median: number; max: number; n: number } {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  return { min: round(v[0], 2), median: round(mid, 2), max: round(v[v.length - 1], 2), n: v.length };
}

async function vsKeras(rounds: number, budgetMs: number): Promise<Record<string, unknown>> {
  const backends: BackendName[] = ['tensorflow', 'wasm'];
  const perRound: Array<Record<string, unknown>> = [];
  const ratios: Record<string, number[]> = {};
  const cpuRatios: Record<string, number[]> = {};
  const msPerStep: Record<string, number[]> = { keras: [] };
  const cpuMsPerStep: Record<string, number[]> = { keras: [] };
  for (let r = 0; r < rounds; r++) {
    console.error(`bench: vs keras, round ${r + 1}/${rounds} ...`);
    const keras = await kerasReference(budgetMs);
    const row: Record<string, unknown> = { keras: keras.msPerStep ?? keras.error, kerasCpu: keras.cpuMsPerStep };
    for (const b of backends) {
      try {
        const { stdout } = await promisify(execFile)(
          process.execPath,
          [__filename, '--child-trainer', b, '--budget-ms', String(budgetMs)],
          { timeout: 600_000, maxBuffer: 1 << 24 },
        );
        const m = JSON.parse(stdout.trim().split('\n').pop()!) as TrainerMeasurement;
        row[b] = m.msPerStep;
        row[`${b}Cpu`] = m.cpuMsPerStep;
        row[`${b}Numerics`] = m.numerics;
        (msPerStep[b] ??= []).push(m.msPerStep);
        (cpuMsPerStep[b] ??= []).push(m.cpuMsPerStep);
        if (typeof keras.samplesPerSec === 'number') (ratios[b] ??= []).push(m.samplesPerSec / keras.samplesPerSec);
        if (typeof keras.cpuMsPerStep === 'number') (cpuRatios[b] ??= []).push(keras.cpuMsPerStep / m.cpuMsPerStep);
      } catch (err) {
        row[b] = `unavailable: ${(err as Error).message.split('\n').find((l) => /Error/.test(l)) ?? 'failed'}`;
      }
    }
    if (typeof keras.msPerStep === 'number') msPerStep.keras.push(keras.msPerStep);
    if (typeof keras.cpuMsPerStep === 'number') cpuMsPerStep.keras.push(keras.cpuMsPerStep);
    perRound.push(row);
  }
  return {
    rounds,
    budgetMsPerCase: budgetMs,
    msPerStepByRound: perRound,
    msPerStep: Object.fromEntries(Object.entries(msPerStep).map(([k, v]) => [k, v.length ? spread(v) : null])),
    cpuMsPerStep: Object.fromEntries(Object.entries(cpuMsPerStep).map(([k, v]) => [k, v.length ? spread(v) : null])),
    // Keras's samples/s over ours, per round (wall clock, the measure).
    ratioToKeras: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, spread(v)])),
    // The same from CPU time per step (Keras's CPU ms over ours): less sensitive to other load on the machine,
    // but blind to how well each uses its two threads.
    cpuRatioToKeras: Object.fromEntries(Object.entries(cpuRatios).map(([k, v]) => [k, spread(v)])),
  };
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const budgetMs = Number(arg('--budget-ms') ?? 8000);
  const childThreads = arg('--child-wasm-threads');
  if (childThreads) return threadedChild(Number(childThreads), budgetMs);
  if (process.argv.includes('--child-tf-determinism')) return tfDeterminismChild();
  const childTrainer = arg('--child-trainer');
  if (childTrainer) return trainerChild(childTrainer as BackendName, budgetMs);
  const vsKerasRounds = arg('--vs-keras');
  if (vsKerasRounds) {
    const loadBefore = os.loadavg()[0];
    const res = await vsKeras(Number(vsKerasRounds), budgetMs);
    const out = {
      bench: 'backends-vs-keras',
      date: new Date().toISOString(),
      tfjs: tf.version.tfjs,
      node: process.version,
      cpus: os.cpus().length,
      loadavg1m: { before: round(loadBefore, 2), after: round(os.loadavg()[0], 2) },
      batch: BATCH,
      ...res,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return;
  }

  const loadBefore = os.loadavg().map((v) => round(v, 2));
  const results: Measurement[] = [];
  const trainer: TrainerMeasurement[] = [];
  const unavailable: Record<string, string> = {};
  const backends: Record<string, unknown> = {};
  for (const name of ['tensorflow', 'wasm', 'cpu'] as BackendName[]) {
    try {
      backends[name] = await initBackend(name);
    } catch (err) {
      unavailable[name] = (err as Error).message;
      continue;
    }
    for (const kind of ['mlp', 'cnn'] as const) {
      console.error(`bench: ${name} ${kind} ...`);
      results.push(measure(name, kind, budgetMs));
    }
    // The cpu backend takes seconds per CNN step: the trainer figure would only measure patience.
    if (name !== 'cpu') {
      console.error(`bench: ${name} trainer mnist-cnn ...`);
      trainer.push(await measureTrainer(name, budgetMs));
    }
  }
  console.error('bench: keras reference ...');
  const keras = await kerasReference(budgetMs);
  const kerasSps = typeof keras.samplesPerSec === 'number' ? keras.samplesPerSec : null;
  const tfDeterminism =
    // A budget under 1 s is run-all's --quick smoke run: the experiment takes minutes.
    process.argv.includes('--no-tf-determinism') || unavailable.tensorflow || budgetMs < 1000
      ? 'skipped'
      : await tfDeterminismExperiment();
  const wasmThreads = process.argv.includes('--no-threads') ? 'skipped' : await wasmThreadsExperiment(budgetMs);

  const out = {
    bench: 'backends',
    date: new Date().toISOString(),
    tfjs: tf.version.tfjs,
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    // Other work on the machine skews every number (and the thread comparison most): judge by these.
    loadavg1m: { before: loadBefore[0], after: round(os.loadavg()[0], 2) },
    batch: BATCH,
    budgetMsPerCase: budgetMs,
    backends,
    unavailable,
    results,
    samplesPerSec: Object.fromEntries(
      (['mlp', 'cnn'] as const).map((k) => [
        k,
        Object.fromEntries(results.filter((r) => r.model === k).map((r) => [r.backend, r.samplesPerSec])),
      ]),
    ),
    // The mnist-cnn as durable-train trains it, beside Keras: the goals are wasm >= 0.5 and
    // tensorflow >= 0.67 of Keras's samples/s.
    mnistCnnTrainer: {
      batch: BATCH,
      results: trainer,
      keras,
      ratioToKeras: kerasSps
        ? Object.fromEntries(trainer.map((r) => [r.backend, round(r.samplesPerSec / kerasSps, 2)]))
        : null,
    },
    tfDeterminism,
    wasmThreads,
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
