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
  const stepsPerEpoch = Math.ceil(rows / spec.batchSize);
  return { stepsPerEpoch, totalSteps: stepsPerEpoch * spec.epochs };
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
