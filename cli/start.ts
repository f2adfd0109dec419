// `start --spec FILE [--run-id ID] [--wait]`: validate the spec, start the run (workflow id = run id).
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { CheckpointRef } from '../activities/types';
import { SpecError, type RunSpec } from '../spec';
import { withRunDefaults } from '../spec/helpers';
import { DatasetError, validateDataFile } from '../training/data';
import { dataSpecOf } from '../training/task-data';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { TRAINING_WORKFLOW } from '../workflows/definitions';
import type { TrainingInput } from '../workflows/training';
import type { RunResult } from '../workflows/progress';
import { openStore, StorageUnavailableError, type Manifest } from '../checkpoint';
import type { PreflightResult } from '../training/preflight';
import { specHash } from '../activities/fingerprint';
import { CliError, defaultRunId, EXIT, loadSpecFile, runIdArg, runIdForSpecFile, type Out } from './common';
import { connectClient, runUrl, temporalSettings, type TemporalSettings } from './connection';
import { evalLine } from './evals';
import { assertResumable, newestManifest, QUICK } from './resume-check';
import { defineCommand } from './command';

export async function hasSearchAttributes(client: Client, namespace: string): Promise<boolean> {
  try {
    const res = await client.connection.operatorService.listSearchAttributes({ namespace });
    const have = Object.keys(res.customAttributes ?? {});
    return Object.keys(SEARCH_ATTRIBUTES).every((k) => have.includes(k));
  } catch {
    return false;
  }
}

/**
 * Refuses, before anything starts, a checkpoint.storage URL the store opener would refuse on the worker (s3:///x,
 * an unknown scheme, a newline): otherwise the worker retries for minutes and the run fails late. Opening only
 * parses the URL and builds a client; nothing is read or written.
 */
export function assertStorageOpens(spec: RunSpec): void {
  try {
    openStore(spec.checkpoint.storage);
  } catch (err) {
    throw new CliError(`invalid spec: checkpoint.storage: ${(err as Error).message}`, EXIT.usage);
  }
}

/**
 * Refuses, before anything starts, cloud storage whose server turns this CLI's credentials away: a bucket or
 * container that does not exist, wrong credentials, no permission to list. Lists the run's prefix once, with the
 * CLI's environment (the workers are expected to share it). Only the server's own refusal stops the start: a
 * store this machine cannot reach, or credentials only the workers have, are left to the workers' probe.
 */
export async function assertStorageReachable(spec: RunSpec, runId: string): Promise<void> {
  if (spec.checkpoint.storage.toLowerCase().startsWith('file://')) return;
  const store = openStore(spec.checkpoint.storage, process.cwd(), { ...process.env, ...QUICK });
  try {
    await store.list(`${runId}/`);
  } catch (err) {
    if (err instanceof StorageUnavailableError && !err.retryable && err.details.status !== undefined) {
      throw new CliError(`checkpoint storage ${store.url} refused: ${err.message}; nothing was started`, EXIT.usage);
    }
  }
}

/**
 * A file dataset is checked here, before anything starts (the file exists, the label and features are there, the first
 * rows parse), with the path resolved as a worker started in this directory resolves it.
 */
async function checkDataFile(spec: RunSpec): Promise<void> {
  if (!('format' in spec.dataset)) return;
  try {
    await validateDataFile(dataSpecOf(spec), { baseDir: process.cwd() });
  } catch (err) {
    if (err instanceof DatasetError) throw new CliError(`invalid spec: ${err.message}`, EXIT.usage);
    throw err;
  }
}

/** A model.json is loaded here, before anything starts: its layers and weights must fit (relative to this directory). */
async function checkModelFile(spec: RunSpec): Promise<void> {
  if (typeof spec.model !== 'object' || !('tfjs' in spec.model)) return;
  // Loaded only for such specs: tfjs is a heavy import for the other commands.
  const { loadTfjsModel } = await import('../training/tfjs-model');
  try {
    (await loadTfjsModel(spec.model.tfjs)).model.dispose();
  } catch (err) {
    if ((err as Error).name === 'ConfigError')
      throw new CliError(`invalid spec: ${(err as Error).message}`, EXIT.usage);
    throw err;
  }
}

/** `model.layers[2].units: ...` -> the field and the rest; a message without a field prefix is the `fallback` field's. */
function fieldOf(message: string, fallback: string): { field: string; detail: string } {
  const m = /^((?:model|dataset|freeze|task|loss|optimizer|schedule|augment|checkpoint)[\w.[\]]*): ([\s\S]*)$/.exec(
    message,
  );
  return m ? { field: m[1], detail: m[2] } : { field: fallback, detail: message };
}

/**
 * Loads the data, builds the model on its shape and runs every preflight check (training/preflight.ts): a run that
 * cannot work is refused here, as a SpecError naming the field, before any workflow exists. tfjs is imported only now.
 */
export async function preflightSpec(spec: RunSpec): Promise<PreflightResult> {
  const { preflight } = await import('../training/preflight');
  const { isConfigError } = await import('../training/errors');
  try {
    return await preflight(spec, { baseDir: process.cwd() });
  } catch (err) {
    if (!isConfigError(err)) throw err;
    const e = err as Error & { field?: unknown };
    const fallback = typeof spec.model === 'object' && /^model /.test(e.message) ? 'model' : 'dataset';
    const { field, detail } =
      typeof e.field === 'string' && e.message.startsWith(`${e.field}: `)
        ? { field: e.field, detail: e.message.slice(e.field.length + 2) }
        : fieldOf(e.message, fallback);
    throw new SpecError(field, detail);
  }
}

/** The feature shape of a built-in dataset (a file dataset's is known once the worker reads it). */
const BUILTIN_FEATURE_SHAPES: Record<string, number[]> = { mnist: [28, 28, 1], iris: [4] };

/**
 * A layer list with `inputs` is built here, before anything starts, when its input shape is known (the spec's
 * inputShape or a built-in dataset's): merged shapes that do not fit are refused naming the layer and field.
 */
async function checkLayerGraph(spec: RunSpec): Promise<void> {
  const model = spec.model;
  if (typeof model !== 'object' || !('layers' in model) || !model.layers.some((l) => l.inputs !== undefined)) return;
  const shape =
    model.inputShape ?? ('name' in spec.dataset ? BUILTIN_FEATURE_SHAPES[spec.dataset.name as string] : undefined);
  if (!shape) return;
  const { buildFromLayers } = await import('../training/models');
  try {
    buildFromLayers(model.layers, shape).dispose();
  } catch (err) {
    if (['LayerError', 'ConfigError'].includes((err as Error).name))
      throw new CliError(`invalid spec: ${(err as Error).message}`, EXIT.usage);
    throw err;
  }
}

export interface StartOptions {
  spec: RunSpec;
  runId?: string;
  from?: CheckpointRef | null;
  /** The fork source run's spec (with `from`): what the fork changes takes effect at the fork point. */
  sourceSpec?: RunSpec | null;
  /** Attach to an existing run with this id instead of failing. */
  attach?: boolean;
}

/**
 * The spec a new execution of `runId` starts with: withRunDefaults, except for a run whose checkpoints were made from
 * a spec without some of those defaults (started before they existed: its newest checkpoint's spec fingerprint says
 * so), which keeps its spec as recorded, so `start` continues it exactly as before. `newest`: that manifest, when
 * the caller has read it already (null: the run has none).
 */
export async function withDefaultsFor(spec: RunSpec, runId: string, newest?: Manifest | null): Promise<RunSpec> {
  const fresh = withRunDefaults(spec);
  const without = <T extends object>(o: T, key: string): T =>
    Object.fromEntries(Object.entries(o).filter(([k]) => k !== key)) as T;
  // A default the given spec lacks and withRunDefaults added, taken out again.
  const dropHeartbeat = (s: RunSpec): RunSpec =>
    'heartbeatTimeoutSeconds' in spec || !('heartbeatTimeoutSeconds' in s) ? s : without(s, 'heartbeatTimeoutSeconds');
  const dropNormalize = (s: RunSpec): RunSpec =>
    'normalizeFrom' in spec.dataset || !('normalizeFrom' in s.dataset)
      ? s
      : { ...s, dataset: without(s.dataset, 'normalizeFrom') };
  const legacy = [dropHeartbeat(fresh), dropNormalize(dropHeartbeat(fresh)), dropNormalize(fresh)].filter(
    (s) => s !== fresh,
  );
  if (legacy.length === 0) return fresh;
  // Unreadable storage is named by the checks that follow, or by the worker.
  const recorded = newest === undefined ? await newestManifest(spec, runId) : newest;
  return legacy.find((s) => recorded?.fingerprints.spec === specHash(s)) ?? fresh;
}

export async function startRun(
  client: Client,
  settings: TemporalSettings,
  opts: StartOptions,
): Promise<{ handle: WorkflowHandle; runId: string; attached: boolean }> {
  const runId = runIdArg(opts.runId ?? defaultRunId(opts.spec));
  // The run's newest checkpoint, read once: it decides the defaults an older run keeps and whether it can continue.
  const newest = opts.from ? null : await newestManifest(opts.spec, runId);
  // A new run records its defaults (a validation split) in its spec; a fork keeps its source's data as recorded.
  if (!opts.from) opts = { ...opts, spec: await withDefaultsFor(opts.spec, runId, newest) };
  assertStorageOpens(opts.spec);
  await assertStorageReachable(opts.spec, runId);
  await checkDataFile(opts.spec);
  await checkModelFile(opts.spec);
  await checkLayerGraph(opts.spec);
  const { built } = await preflightSpec(opts.spec);
  // A run that has checkpoints continues from them: a spec they cannot continue with is refused before it starts.
  if (newest) assertResumable(opts.spec, runId, built, newest);
  const input: TrainingInput = {
    spec: opts.spec,
    from: opts.from ?? null,
    ...(opts.from ? { sourceSpec: opts.sourceSpec ?? null } : {}),
    searchAttributes: await hasSearchAttributes(client, settings.namespace),
  };
  try {
    const handle = await client.workflow.start(TRAINING_WORKFLOW, {
      workflowId: runId,
      taskQueue: settings.taskQueue,
      args: [input],
      memo: { spec: opts.spec, ...(opts.from ? { forkedFrom: opts.from } : {}) },
    });
    return { handle, runId, attached: false };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      if (opts.attach) return { handle: client.workflow.getHandle(runId), runId, attached: true };
      throw new CliError(`run ${runId} is already running; watch it with \`durable-train watch ${runId}\``, EXIT.state);
    }
    throw err;
  }
}

export function describeResult(r: RunResult): string {
  return [
    `run ${r.runId} ${r.status}: step ${r.step}/${r.totalSteps}, ${r.epoch} epoch${r.epoch === 1 ? '' : 's'} completed`,
    ...(r.validation ? [`  ${evalLine('validation', r.validation)} (chose by)`] : []),
    `  ${evalLine('test', r)}`,
    ...(r.bestCheckpoint
      ? [`  best checkpoint ${r.bestCheckpoint.id} (step ${r.bestCheckpoint.step}, by validation)`]
      : []),
    `  last checkpoint ${r.lastCheckpoint?.id ?? '-'}  backend ${r.backend ?? '-'}  chunks ${r.chunks}  recoveries ${r.recoveries}`,
    `  weights sha256 ${r.weightsSha256 ?? '-'}`,
  ].join('\n');
}

/** Whether any worker polled the task queue lately (the server remembers pollers for a few minutes). */
export async function hasPollers(client: Client, settings: TemporalSettings): Promise<boolean> {
  const res = await client.workflowService.describeTaskQueue({
    namespace: settings.namespace,
    taskQueue: { name: settings.taskQueue, kind: 1 }, // TASK_QUEUE_KIND_NORMAL
    taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW: workers poll it as soon as they start
  });
  return (res.pollers ?? []).length > 0;
}

/**
 * While `start --wait` waits: says once, within seconds, when no worker polls the task queue and how to start one
 * (the run waits for one, it has not failed). Returns the function that stops watching.
 */
export function watchForWorkers(
  client: Client,
  settings: TemporalSettings,
  say: (message: string) => void,
  everyMs = 3000,
): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const check = async () => {
    const polled = await hasPollers(client, settings).catch(() => true); // no answer: say nothing
    if (stopped) return;
    if (!polled) {
      say(
        `no worker is polling task queue ${settings.taskQueue}: the run waits for one. Start one with ` +
          `\`DURABLE_TRAIN_TASK_QUEUE=${settings.taskQueue} durable-train worker\` (same Temporal address and ` +
          'namespace); still waiting',
      );
      return;
    }
    timer = setTimeout(() => void check(), everyMs * 10);
  };
  timer = setTimeout(() => void check(), everyMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export async function startCommand(
  client: Client,
  settings: TemporalSettings,
  out: Out,
  opts: StartOptions & { wait?: boolean },
): Promise<void> {
  const { handle, runId } = await startRun(client, settings, opts);
  const url = runUrl(settings, runId);
  if (!opts.wait) {
    out.emit({ runId, started: true, url }, () => `started run ${runId}${url ? `\n  Web UI: ${url}` : ''}`);
    return;
  }
  if (!out.json)
    process.stderr.write(`started run ${runId}, waiting for it to finish${url ? ` (Web UI: ${url})` : ''}\n`);
  const stopWatching = watchForWorkers(client, settings, (m) => process.stderr.write(`${m}\n`));
  let result: RunResult;
  try {
    result = (await handle.result()) as RunResult;
  } finally {
    stopWatching();
  }
  out.emit({ runId, url, result }, () => describeResult(result));
}

export const startDefinition = defineCommand({
  name: 'start',
  summary: 'validate and start a run (workflow id = run id); `--wait` prints the result',
  options: [
    { name: 'spec', value: 'FILE', required: true, description: 'the run spec (JSON), checked before anything starts' },
    { name: 'run-id', value: 'ID', description: "the run id (default: the spec file's name and a short suffix)" },
    { name: 'wait', description: 'wait for the run to finish and print its result' },
  ],
  async run({ opts, out }) {
    const runId = runIdArg(opts['run-id'] ?? runIdForSpecFile(opts.spec));
    const spec = loadSpecFile(opts.spec); // validated before anything is started
    assertStorageOpens(spec);
    const settings = temporalSettings();
    const client = await connectClient(settings);
    await startCommand(client, settings, out, { spec, runId, wait: opts.wait });
    return EXIT.ok;
  },
});
