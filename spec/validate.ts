// Validates a run spec and fills in defaults. Pure: runs in the CLI, the activities and the workflow sandbox.
import type { RunSpec } from './types';

export const MODELS = ['mnist-mlp', 'mnist-cnn'] as const;
export const DATASETS = ['mnist'] as const;
export const OPTIMIZERS = ['sgd', 'momentum', 'adam'] as const;
export const SCHEDULES = ['constant', 'step', 'cosine', 'plateau'] as const;
/** Trainable layers of each model, by name (what `freeze` may list). */
export const MODEL_LAYERS: Record<string, readonly string[]> = {
  'mnist-mlp': ['dense1', 'dense2'],
  'mnist-cnn': ['conv1', 'conv2', 'dense1', 'dense2'],
};
export const DATASET_SIZES: Record<string, { train: number; test: number }> = { mnist: { train: 60000, test: 10000 } };

export class SpecError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid spec: ${field}: ${message}`);
    this.name = 'SpecError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkKeys(o: Obj, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      throw new SpecError(field ? `${field}.${k}` : k, `unknown field (allowed: ${allowed.join(', ')})`);
    }
  }
}

function obj(o: Obj, key: string, field: string, required: boolean): Obj | undefined {
  const v = o[key];
  if (v === undefined) {
    if (required) throw new SpecError(field, 'missing required field');
    return undefined;
  }
  if (!isObj(v)) throw new SpecError(field, `must be an object, got ${JSON.stringify(v)}`);
  return v;
}

interface NumOpts {
  required?: boolean;
  int?: boolean;
  min?: number;
  max?: number;
  exclusiveMin?: number;
}
function num(o: Obj, key: string, field: string, opts: NumOpts = {}): number | undefined {
  const v = o[key];
  if (v === undefined) {
    if (opts.required) throw new SpecError(field, 'missing required field');
    return undefined;
  }
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new SpecError(field, `must be a number, got ${JSON.stringify(v)}`);
  if (opts.int && !Number.isInteger(v)) throw new SpecError(field, `must be an integer, got ${v}`);
  if (opts.min !== undefined && v < opts.min) throw new SpecError(field, `must be >= ${opts.min}, got ${v}`);
  if (opts.max !== undefined && v > opts.max) throw new SpecError(field, `must be <= ${opts.max}, got ${v}`);
  if (opts.exclusiveMin !== undefined && v <= opts.exclusiveMin) {
    throw new SpecError(field, `must be > ${opts.exclusiveMin}, got ${v}`);
  }
  return v;
}

function oneOf<T extends string>(
  o: Obj,
  key: string,
  field: string,
  allowed: readonly T[],
  required = true,
): T | undefined {
  const v = o[key];
  if (v === undefined) {
    if (required) throw new SpecError(field, `missing required field (one of: ${allowed.join(', ')})`);
    return undefined;
  }
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new SpecError(field, `unknown value ${JSON.stringify(v)} (one of: ${allowed.join(', ')})`);
  }
  return v as T;
}

function bool(o: Obj, key: string, field: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new SpecError(field, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** Validates `input` (parsed JSON) and returns a complete spec with defaults filled in. Throws SpecError. */
export function validateSpec(input: unknown): RunSpec {
  if (!isObj(input)) throw new SpecError('(root)', 'the spec must be a JSON object');
  checkKeys(input, '', [
    'model',
    'dataset',
    'epochs',
    'batchSize',
    'chunkSteps',
    'chunkSeconds',
    'seed',
    'optimizer',
    'schedule',
    'augment',
    'dropout',
    'checkpoint',
    'resume',
    'freeze',
  ]);
  const model = oneOf(input, 'model', 'model', MODELS)!;

  const ds = obj(input, 'dataset', 'dataset', true)!;
  checkKeys(ds, 'dataset', ['name', 'trainLimit', 'testLimit']);
  const dsName = oneOf(ds, 'name', 'dataset.name', DATASETS)!;
  const sizes = DATASET_SIZES[dsName];
  const trainLimit =
    num(ds, 'trainLimit', 'dataset.trainLimit', { int: true, min: 1, max: sizes.train }) ?? sizes.train;
  const testLimit = num(ds, 'testLimit', 'dataset.testLimit', { int: true, min: 1, max: sizes.test }) ?? sizes.test;

  const epochs = num(input, 'epochs', 'epochs', { required: true, int: true, min: 1, max: 10_000 })!;
  const batchSize = num(input, 'batchSize', 'batchSize', { required: true, int: true, min: 1, max: 65_536 })!;
  const chunkSteps = num(input, 'chunkSteps', 'chunkSteps', { int: true, min: 1, max: 1_000_000 }) ?? 10_000;
  const chunkSeconds = num(input, 'chunkSeconds', 'chunkSeconds', { min: 1, max: 86_400 }) ?? 60;
  const seed = num(input, 'seed', 'seed', { int: true, min: 0, max: 2 ** 32 - 1 }) ?? 42;
  if (batchSize > trainLimit)
    throw new SpecError('batchSize', `must be <= dataset.trainLimit (${trainLimit}), got ${batchSize}`);

  const opt = obj(input, 'optimizer', 'optimizer', true)!;
  checkKeys(opt, 'optimizer', ['name', 'learningRate', 'momentum', 'beta1', 'beta2', 'epsilon']);
  const optimizer: RunSpec['optimizer'] = {
    name: oneOf(opt, 'name', 'optimizer.name', OPTIMIZERS)!,
    learningRate: num(opt, 'learningRate', 'optimizer.learningRate', { required: true, exclusiveMin: 0, max: 10 })!,
  };
  const momentum = num(opt, 'momentum', 'optimizer.momentum', { min: 0, max: 0.9999 });
  const beta1 = num(opt, 'beta1', 'optimizer.beta1', { min: 0, max: 0.9999 });
  const beta2 = num(opt, 'beta2', 'optimizer.beta2', { min: 0, max: 0.99999999 });
  const epsilon = num(opt, 'epsilon', 'optimizer.epsilon', { exclusiveMin: 0, max: 1 });
  if (optimizer.name === 'momentum') optimizer.momentum = momentum ?? 0.9;
  else if (momentum !== undefined) throw new SpecError('optimizer.momentum', `only applies to the momentum optimizer`);
  if (optimizer.name === 'adam') {
    optimizer.beta1 = beta1 ?? 0.9;
    optimizer.beta2 = beta2 ?? 0.999;
    optimizer.epsilon = epsilon ?? 1e-7;
  } else if (beta1 !== undefined || beta2 !== undefined || epsilon !== undefined) {
    throw new SpecError('optimizer', 'beta1/beta2/epsilon only apply to the adam optimizer');
  }

  const spec: RunSpec = {
    model,
    dataset: { name: dsName, trainLimit, testLimit },
    epochs,
    batchSize,
    chunkSteps,
    chunkSeconds,
    seed,
    optimizer,
    checkpoint: { storage: '' },
  };

  const sch = obj(input, 'schedule', 'schedule', false);
  if (sch) {
    const name = oneOf(sch, 'name', 'schedule.name', SCHEDULES)!;
    if (name === 'constant') {
      checkKeys(sch, 'schedule', ['name']);
      spec.schedule = { name };
    } else if (name === 'step') {
      checkKeys(sch, 'schedule', ['name', 'every', 'factor']);
      spec.schedule = {
        name,
        every: num(sch, 'every', 'schedule.every', { required: true, int: true, min: 1 })!,
        factor: num(sch, 'factor', 'schedule.factor', { required: true, exclusiveMin: 0, max: 1 })!,
      };
    } else if (name === 'cosine') {
      checkKeys(sch, 'schedule', ['name', 'warmupSteps', 'minLearningRate']);
      spec.schedule = {
        name,
        warmupSteps: num(sch, 'warmupSteps', 'schedule.warmupSteps', { int: true, min: 0 }) ?? 0,
        minLearningRate: num(sch, 'minLearningRate', 'schedule.minLearningRate', { min: 0 }) ?? 0,
      };
    } else {
      checkKeys(sch, 'schedule', ['name', 'metric', 'patience', 'factor', 'minLearningRate']);
      spec.schedule = {
        name,
        metric: oneOf(sch, 'metric', 'schedule.metric', ['loss', 'accuracy'] as const, false) ?? 'loss',
        patience: num(sch, 'patience', 'schedule.patience', { int: true, min: 0 }) ?? 1,
        factor: num(sch, 'factor', 'schedule.factor', { exclusiveMin: 0, max: 1 }) ?? 0.5,
        minLearningRate: num(sch, 'minLearningRate', 'schedule.minLearningRate', { min: 0 }) ?? 0,
      };
    }
  } else {
    spec.schedule = { name: 'constant' };
  }

  const aug = obj(input, 'augment', 'augment', false);
  if (aug) {
    checkKeys(aug, 'augment', ['shift']);
    spec.augment = { shift: num(aug, 'shift', 'augment.shift', { int: true, min: 0, max: 8 }) ?? 0 };
  } else spec.augment = { shift: 0 };

  spec.dropout = num(input, 'dropout', 'dropout', { min: 0, max: 0.95 }) ?? (model === 'mnist-cnn' ? 0.25 : 0);

  const ck = obj(input, 'checkpoint', 'checkpoint', true)!;
  checkKeys(ck, 'checkpoint', ['storage', 'everySeconds', 'keepLatest', 'keepBest', 'keepEverySteps']);
  const storage = ck.storage;
  if (storage === undefined) throw new SpecError('checkpoint.storage', 'missing required field');
  if (typeof storage !== 'string' || !/^(file|s3):\/\/.+/.test(storage)) {
    throw new SpecError(
      'checkpoint.storage',
      `must be file://PATH or s3://BUCKET/PREFIX, got ${JSON.stringify(storage)}`,
    );
  }
  spec.checkpoint = {
    storage,
    everySeconds: num(ck, 'everySeconds', 'checkpoint.everySeconds', { min: 0, max: 86_400 }) ?? 0,
    keepLatest: num(ck, 'keepLatest', 'checkpoint.keepLatest', { int: true, min: 1 }) ?? 5,
  };
  const kb = obj(ck, 'keepBest', 'checkpoint.keepBest', false);
  if (kb) {
    checkKeys(kb, 'checkpoint.keepBest', ['k', 'metric']);
    spec.checkpoint.keepBest = {
      k: num(kb, 'k', 'checkpoint.keepBest.k', { required: true, int: true, min: 1 })!,
      metric: oneOf(kb, 'metric', 'checkpoint.keepBest.metric', ['accuracy', 'loss'] as const)!,
    };
  }
  const kes = num(ck, 'keepEverySteps', 'checkpoint.keepEverySteps', { int: true, min: 1 });
  if (kes !== undefined) spec.checkpoint.keepEverySteps = kes;

  const freeze = input.freeze;
  if (freeze !== undefined) {
    const layers = MODEL_LAYERS[model];
    if (!Array.isArray(freeze)) throw new SpecError('freeze', `must be a list of layer names (${layers.join(', ')})`);
    for (const [i, name] of freeze.entries()) {
      if (typeof name !== 'string' || !layers.includes(name)) {
        throw new SpecError(
          `freeze[${i}]`,
          `unknown layer ${JSON.stringify(name)} for ${model} (layers: ${layers.join(', ')})`,
        );
      }
    }
    if (freeze.length === layers.length) throw new SpecError('freeze', 'freezes every layer: nothing would train');
    if (freeze.length) spec.freeze = [...new Set(freeze as string[])].sort();
  }

  const res = obj(input, 'resume', 'resume', false);
  if (res) {
    checkKeys(res, 'resume', ['allowDatasetChange', 'allowBackendChange']);
    spec.resume = {
      allowDatasetChange: bool(res, 'allowDatasetChange', 'resume.allowDatasetChange') ?? false,
      allowBackendChange: bool(res, 'allowBackendChange', 'resume.allowBackendChange') ?? false,
    };
  }
  return spec;
}

/** Steps in one epoch and in the whole run (the last partial batch of an epoch counts as a step). */
export function stepCounts(spec: RunSpec): { stepsPerEpoch: number; totalSteps: number } {
  const stepsPerEpoch = Math.ceil((spec.dataset.trainLimit ?? DATASET_SIZES[spec.dataset.name].train) / spec.batchSize);
  return { stepsPerEpoch, totalSteps: stepsPerEpoch * spec.epochs };
}

/** Shallow-deep merge of an override into a spec (objects merge, everything else replaces). */
export function mergeSpec(base: unknown, override: unknown): unknown {
  if (!isObj(base) || !isObj(override)) return override === undefined ? base : override;
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(override)) out[k] = isObj(v) && isObj(base[k]) ? mergeSpec(base[k], v) : v;
  return out;
}
