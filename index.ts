// durable-train as a library: run our workflow and activities inside your own worker process, with your own model
// builders and dataset loaders registered in code, and start runs from your own code.
//
//   import { createTrainingWorker, startTraining } from 'durable-train';
//   const { worker } = await createTrainingWorker({ models: { tiny: ({ inputShape, outputs }) => ... } });
//   await worker.runUntil(startTraining(client, spec, { runId: 'r1' }).then((run) => run.result()));
import type { Client, WorkflowHandle } from '@temporalio/client';
import { createWorker, type WorkerOptions } from './cli/worker';
import { temporalSettings, type TemporalSettings } from './cli/connection';
import { startRun } from './cli/start';
import { validateSpec } from './spec/validate';
import { register, type Registry } from './training/registry';
import type { RunResult } from './workflows/progress';
import type { InferenceModel } from './training/inference';

export interface TrainingWorkerOptions extends WorkerOptions, Registry {}

/**
 * A Temporal worker running the training workflow and its activities on the task queue of `settings` (default: the
 * Temporal profile and TEMPORAL_* variables with TLS and API key, DURABLE_TRAIN_TASK_QUEUE, DURABLE_TRAIN_CODEC_KEYS). `models` and `datasets` become available to specs
 * as { "registered": "name" }. Run it with `worker.run()` or `worker.runUntil(...)`; close `connection` after.
 */
export async function createTrainingWorker(opts: TrainingWorkerOptions = {}) {
  const { models, datasets, ...workerOpts } = opts;
  register({ models, datasets });
  return createWorker(workerOpts);
}

export interface StartTrainingOptions {
  /** The run id (= workflow id). Default: model name and time. */
  runId?: string;
  settings?: TemporalSettings;
}

/**
 * Validates `spec` (throws SpecError naming the field) and starts the run. Resolves to its workflow handle:
 * `await run.result()` gives the RunResult (accuracy or mse/mae, weightsSha256, ...).
 */
export async function startTraining(
  client: Client,
  spec: unknown,
  opts: StartTrainingOptions = {},
): Promise<WorkflowHandle & { result(): Promise<RunResult> }> {
  const { handle } = await startRun(client, opts.settings ?? temporalSettings(), {
    spec: validateSpec(spec),
    runId: opts.runId,
  });
  return handle as WorkflowHandle & { result(): Promise<RunResult> };
}

/**
 * A trained model with its preprocessing, for raw rows: `(await loadForInference(dir)).predict([{ f1: 0.3, ... }])`
 * gives class names and probabilities (or values). `source` is an export directory (`durable-train export`: model.json,
 * weights.bin, preprocessing.json; loaded with plain @tensorflow/tfjs) or a run's checkpoint, { run: 'RUN_ID[:CKPT]',
 * client } (default: the newest valid checkpoint, as `durable-train predict` reads it). Call dispose() when done.
 */
export async function loadForInference(
  source: string | { run: string; client: Client; storage?: string },
): Promise<InferenceModel> {
  if (typeof source === 'string') {
    const { inferenceFromExport } = await import('./training/inference');
    return inferenceFromExport(source);
  }
  const { loadRunForInference } = await import('./cli/predict');
  return loadRunForInference(source.client, source.run, { storage: source.storage, command: 'loadForInference' });
}

export { validateSpec, SpecError } from './spec/validate';
export type { InferenceModel, Prediction, RawRow } from './training/inference';
export type { Preprocessing } from './training/preprocess';
export type { RunSpec, RunSpecInput, ModelSpec, DatasetSpec } from './spec/types';
export type { ModelBuilder, ModelBuilderContext, DatasetLoader, RegisteredData, Registry } from './training/registry';
export type { RunResult, RunProgress } from './workflows/progress';
export type { TemporalSettings } from './cli/connection';
// Connection settings the Temporal way (TOML profile + TEMPORAL_* variables, TLS/mTLS, API key) and the payload codec
// (DURABLE_TRAIN_CODEC_KEYS): `connectClient(temporalSettings())` gives a client that reads encrypted runs.
export { temporalSettings, connectClient, connectionOptions } from './cli/connection';
export { AesGcmPayloadCodec, CodecKeyError, codecFromEnv, parseCodecKeys } from './codec';
export { pauseSignal, resumeSignal, stopSignal, setLearningRateUpdate, progressQuery } from './workflows/definitions';
export { TRAINING_WORKFLOW } from './workflows/definitions';
