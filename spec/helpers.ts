// Small pure helpers around a validated spec. No zod: safe to import anywhere, the workflow sandbox included.
import { DATASET_SIZES, type WatchMetric } from './catalog';
import type { RunSpec } from './schema';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The validation share a new run gets when its spec names none (recorded in the spec by withRunDefaults). */
export const DEFAULT_VALIDATION_FRACTION = 0.1;

/**
 * Rows of `n` training rows held out for validation: the fraction rounded, at least 1 and leaving at least 1 to train
 * on; 0 without a fraction. The one rule for the trainer's split and for step counts.
 */
export function validationRows(n: number, fraction: number | undefined): number {
  if (!fraction || !(fraction > 0) || n < 2) return 0;
  return Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
}

/**
 * Whether the run evaluates a validation split (which then makes every choice: best checkpoint, plateau, early
 * stopping) or, as runs started before validation splits existed, only the test split.
 */
export function hasValidationSplit(spec: Pick<RunSpec, 'dataset'>): boolean {
  const ds = spec.dataset;
  // A split file or a split column always gives one (its rows, or carved by the fraction; else the load fails).
  return (
    (ds.validationFraction ?? 0) > 0 ||
    ('validation' in ds && ds.validation !== undefined) ||
    ('splitColumn' in ds && ds.splitColumn !== undefined)
  );
}

/**
 * The checkpoint metric (manifest name) that choices on `metric` read: the validation split's (valLoss, valAuc, ...)
 * when the run has one, else the test split's (testLoss, testAccuracy), as before validation splits. Lower is better
 * for loss only.
 */
export function choiceMetric(
  spec: Pick<RunSpec, 'dataset'>,
  metric: WatchMetric,
): { name: string; mode: 'min' | 'max' } {
  const prefix = hasValidationSplit(spec) ? 'val' : 'test';
  return { name: `${prefix}${metric[0].toUpperCase()}${metric.slice(1)}`, mode: metric === 'loss' ? 'min' : 'max' };
}

/**
 * The heartbeat timeout a new run records when its spec names none (bench/heartbeat-load.ts, docs/operations.md):
 * a worker heartbeats every second while its training process lives, however long a step takes, for a chunk and for
 * a distributed run's replica alike (both train in training processes by default). A worker that trains in its own
 * event loop (DURABLE_TRAIN_TRAINER_PROCESS=0, or DURABLE_TRAIN_REPLICA_PROCESS=0 for replicas) heartbeats only
 * between steps: runs on such workers want a longer timeout in their spec.
 */
export const RECORDED_HEARTBEAT_S = 3;

/**
 * A new run's spec with the defaults resolved once and recorded: a validation split of DEFAULT_VALIDATION_FRACTION
 * unless the spec names one (0 = none), standardisation statistics from the training rows alone
 * (`normalizeFrom: "train"`: before it, a carved validation split's rows counted in them), and the heartbeat timeout
 * RECORDED_HEARTBEAT_S. Only at the start of a new run: a resumed or forked run keeps its recorded spec, so one
 * started before these defaults existed keeps exactly its data and timeouts.
 */
export function withRunDefaults<S extends Pick<RunSpec, 'dataset'>>(spec: S): S {
  const top = spec as Obj;
  const heartbeat = top.heartbeatTimeoutSeconds !== undefined ? {} : { heartbeatTimeoutSeconds: RECORDED_HEARTBEAT_S };
  const ds = spec.dataset as Obj;
  // A validation file is the validation split: nothing to carve.
  const fraction =
    ds.validationFraction !== undefined || 'validation' in ds
      ? {}
      : { validationFraction: DEFAULT_VALIDATION_FRACTION };
  // Standardised datasets (iris and files) take their statistics from the training rows alone.
  const stats =
    'registered' in ds || ds.name === 'mnist' || ds.normalizeFrom !== undefined ? {} : { normalizeFrom: 'train' };
  return { ...spec, ...heartbeat, dataset: { ...spec.dataset, ...fraction, ...stats } };
}

/** Training examples of a built-in dataset (without its validation rows), or null for a file (known once read). */
/** The run's data-parallel replicas: `distributed.replicas`, 1 for a single run. */
export const replicasOf = (spec: Pick<RunSpec, 'distributed'>): number => spec.distributed?.replicas ?? 1;

export function builtinTrainRows(spec: RunSpec): number | null {
  const ds = spec.dataset;
  if (!('name' in ds)) return null;
  const rows = ds.trainLimit ?? DATASET_SIZES[ds.name].train;
  return rows - validationRows(rows, ds.validationFraction);
}

/**
 * Steps in one epoch and in the whole run (the last partial batch of an epoch counts as a step). A file dataset's
 * row count comes from reading it: pass `trainRows`.
 */
export function stepCounts(spec: RunSpec, trainRows?: number): { stepsPerEpoch: number; totalSteps: number } {
  const rows = trainRows ?? builtinTrainRows(spec);
  if (rows === null) throw new Error('stepCounts: a file dataset needs its row count (trainRows)');
  // A distributed run counts the steps of one replica: each trains on its shard, floor(rows / replicas) examples.
  const shard = spec.distributed ? Math.floor(rows / spec.distributed.replicas) : rows;
  const stepsPerEpoch = Math.ceil(shard / spec.batchSize);
  return { stepsPerEpoch, totalSteps: stepsPerEpoch * spec.epochs };
}

/**
 * Steps of a distributed round from `step`: at most `syncEverySteps`, never past the end of an epoch or the run.
 * `epochAnchor`: a step where an epoch starts, from which epochs are counted (0, unless the replica count changed:
 * the epoch under way then ends at the anchor, and later ones every stepsPerEpoch steps from it).
 */
export function roundSteps(
  step: number,
  stepsPerEpoch: number,
  totalSteps: number,
  syncEverySteps: number,
  epochAnchor = 0,
): number {
  const inEpoch = step < epochAnchor ? epochAnchor - step : stepsPerEpoch - ((step - epochAnchor) % stepsPerEpoch);
  return Math.max(0, Math.min(syncEverySteps, inEpoch, totalSteps - step));
}

/**
 * Deep merge of an override into a spec: objects merge, everything else replaces. An object whose `name` changes
 * (another optimizer, schedule or dataset) replaces the base object whole, since the old one's settings (adam's
 * beta1 under sgd, a step schedule's `every` under cosine) would not apply.
 */
export function mergeSpec(base: unknown, override: unknown): unknown {
  if (!isObj(base) || !isObj(override)) return override === undefined ? base : override;
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(override)) {
    const b = Object.hasOwn(base, k) ? base[k] : undefined;
    const renamed = isObj(v) && isObj(b) && 'name' in v && v.name !== b.name;
    // defineProperty, not assignment: a JSON key "__proto__" stays a (refused) field instead of a prototype.
    const value = isObj(v) && isObj(b) && !renamed ? mergeSpec(b, v) : v;
    Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
