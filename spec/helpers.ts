// Small pure helpers around a validated spec. No zod: safe to import anywhere, the workflow sandbox included.
import { DATASET_SIZES } from './catalog';
import type { RunSpec } from './schema';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Training examples of a built-in dataset, or null for a file (known once it is read). */
export function builtinTrainRows(spec: RunSpec): number | null {
  const ds = spec.dataset;
  if (!('name' in ds)) return null;
  return ds.trainLimit ?? DATASET_SIZES[ds.name].train;
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

/** Steps of a distributed round from `step`: at most `syncEverySteps`, never past the end of an epoch or the run. */
export function roundSteps(step: number, stepsPerEpoch: number, totalSteps: number, syncEverySteps: number): number {
  const inEpoch = stepsPerEpoch - (step % stepsPerEpoch);
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
