// `start --spec FILE [--run-id ID] [--wait]`: validate the spec, start the run (workflow id = run id).
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { CheckpointRef } from '../activities/types';
import type { RunSpec } from '../spec';
import { DatasetError, validateDataFile } from '../training/data';
import { dataSpecOf } from '../training/task-data';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { TRAINING_WORKFLOW } from '../workflows/definitions';
import type { TrainingInput } from '../workflows/training';
import type { RunResult } from '../workflows/progress';
import { openStore } from '../checkpoint';
import { CliError, defaultRunId, EXIT, fmt, runIdArg, type Out } from './common';
import { runUrl, type TemporalSettings } from './connection';

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

export async function startRun(
  client: Client,
  settings: TemporalSettings,
  opts: StartOptions,
): Promise<{ handle: WorkflowHandle; runId: string; attached: boolean }> {
  const runId = runIdArg(opts.runId ?? defaultRunId(opts.spec));
  assertStorageOpens(opts.spec);
  await checkDataFile(opts.spec);
  await checkModelFile(opts.spec);
  await checkLayerGraph(opts.spec);
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
      throw new CliError(`run ${runId} is already running; watch it with \`durable-train watch ${runId}\``, 4);
    }
    throw err;
  }
}

export function describeResult(r: RunResult): string {
  return [
    `run ${r.runId} ${r.status}: step ${r.step}/${r.totalSteps}, ${r.epoch} epoch${r.epoch === 1 ? '' : 's'} completed`,
    r.mse !== undefined
      ? `  test mse ${fmt(r.mse)}  test mae ${fmt(r.mae ?? null)}  test loss ${fmt(r.loss)}`
      : `  test accuracy ${fmt(r.accuracy)}  test loss ${fmt(r.loss)}`,
    `  last checkpoint ${r.lastCheckpoint?.id ?? '-'}  backend ${r.backend ?? '-'}  chunks ${r.chunks}  recoveries ${r.recoveries}`,
    `  weights sha256 ${r.weightsSha256 ?? '-'}`,
  ].join('\n');
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
  const result = (await handle.result()) as RunResult;
  out.emit({ runId, url, result }, () => describeResult(result));
}
