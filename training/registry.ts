// Models and datasets registered in code by the program that runs the worker (the library's createTrainingWorker).
// A spec names them as { "registered": "name" }. User code lives in the worker, the Temporal way: the spec travels
// through Temporal, the builder and the loader stay in the process that trains.
import { DurableTrainError } from '../spec/errors';
import type * as tf from '@tensorflow/tfjs';
import type { RunSpec } from '../spec/types';
import type { DataSplit, DataTask } from './data';

export interface ModelBuilderContext {
  spec: RunSpec;
  /** Shape of one example of the run's data. */
  inputShape: number[];
  /** Units the last layer must give: one per class, or 1 for regression and binary. */
  outputs: number;
}

/**
 * Builds the model's layers. Only the topology is used: the weights are initialized from the run's seeded PRNG (or
 * restored from a checkpoint), so the builder must not depend on randomness. Layers: those of spec model layer lists.
 */
export type ModelBuilder = (ctx: ModelBuilderContext) => tf.LayersModel;

export interface RegisteredData {
  featureShape: number[];
  task: DataTask;
  /** Class names in index order (classification), else null (binary: y holds the labels 0 and 1). */
  classes: string[] | null;
  train: DataSplit;
  /**
   * Rows for model selection (best checkpoint, plateau, early stopping). Optional: without it, the spec's
   * dataset.validationFraction of the train rows is held out (seeded).
   */
  validation?: DataSplit;
  test: DataSplit;
  /** Identifies the data (e.g. sha256 of what was read): a resume on other data is refused unless allowed. */
  fingerprint: string;
}

export type DatasetLoader = (ctx: { spec: RunSpec; seed: number }) => RegisteredData | Promise<RegisteredData>;

export interface Registry {
  models?: Record<string, ModelBuilder>;
  datasets?: Record<string, DatasetLoader>;
}

const models = new Map<string, ModelBuilder>();
const datasets = new Map<string, DatasetLoader>();

/** Adds model builders and dataset loaders for this process (a name registered twice is refused). */
export function register(r: Registry): void {
  for (const [kind, into, from] of [
    ['model', models, r.models],
    ['dataset', datasets, r.datasets],
  ] as const) {
    for (const [name, fn] of Object.entries(from ?? {})) {
      if (typeof fn !== 'function') throw new Error(`register: ${kind} ${name} must be a function`);
      if (into.has(name) && into.get(name) !== fn) throw new Error(`register: ${kind} ${name} is already registered`);
      (into as Map<string, unknown>).set(name, fn);
    }
  }
}

function lookup<T>(kind: string, map: Map<string, T>, name: string): T {
  const fn = map.get(name);
  if (!fn) {
    const have = [...map.keys()];
    throw new RegistryError(
      `no ${kind} named ${JSON.stringify(name)} is registered in this worker` +
        (have.length ? ` (registered: ${have.join(', ')})` : ' (none is: register it with createTrainingWorker)'),
    );
  }
  return fn;
}

export const registeredModel = (name: string) => lookup('model', models, name);
/** Whether this process has a model or dataset registered under `name` (the CLI has none; a library caller may). */
export const hasRegistered = (kind: 'model' | 'dataset', name: string): boolean =>
  (kind === 'model' ? models : datasets).has(name);
export const registeredDataset = (name: string) => lookup('dataset', datasets, name);

/** A spec names something this worker does not have: another worker may, but retrying here cannot help. */
export class RegistryError extends DurableTrainError {
  readonly code = 'invalid' as const;

  override readonly name = 'RegistryError';
}
