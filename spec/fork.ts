// What a fork may change, and how the change takes effect. Pure: used by the CLI (refuse before anything starts) and
// by the activities (apply at the fork point, and refuse again for callers that skipped the CLI).
import type { RunSpec } from './types';
import { mergeSpec, SpecError } from './validate';

/**
 * Fields a fork can never change, and why. The checkpoint's weights, data order and random state belong to them:
 * a fork that changed one would not continue the training it claims to continue.
 */
const FIXED: Array<[prefix: string, why: string]> = [
  ['model', 'the checkpoint holds the weights of the source model'],
  ['dataset', 'the checkpoint holds a position in the source data'],
  ['batchSize', 'the checkpoint holds a position in the data counted in batches of the source size'],
  ['seed', 'the random state continues from the checkpoint; the seed is used only at the start of a run'],
  ['checkpoint.storage', 'the source checkpoint is read from, and the fork writes to, the same storage'],
];

export interface ForkPlan {
  /** Dotted paths of every field whose value differs between the source's spec and the fork's. */
  changed: string[];
  /** A different optimizer: its slots start from zero (the source's slots belong to another update rule). */
  freshOptimizer: boolean;
  /** A different schedule kind: its state starts anew at the fork point. */
  freshSchedule: boolean;
  /** The fork's own learning rate, when it differs from the source's: the base rate from the fork point on. */
  learningRate: number | null;
}

function leaves(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>))
      leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (value !== undefined) {
    out.set(prefix, JSON.stringify(value));
  }
}

/** Dotted paths whose values differ between two (validated) specs, sorted. */
export function specDifferences(a: RunSpec, b: RunSpec): string[] {
  const la = new Map<string, string>();
  const lb = new Map<string, string>();
  leaves(a, '', la);
  leaves(b, '', lb);
  const keys = new Set([...la.keys(), ...lb.keys()]);
  return [...keys].filter((k) => la.get(k) !== lb.get(k)).sort();
}

const under = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}.`);

/**
 * How a fork with spec `fork` continues a checkpoint trained with spec `source` (both validated). Throws a SpecError
 * naming the first field that a fork cannot change.
 */
export function planFork(source: RunSpec, fork: RunSpec): ForkPlan {
  const changed = specDifferences(source, fork);
  for (const path of changed) {
    const fixed = FIXED.find(([prefix]) => under(path, prefix));
    if (fixed) throw new SpecError(path, `cannot change in a fork: ${fixed[1]} (start a new run instead)`);
  }
  const freshOptimizer = source.optimizer.name !== fork.optimizer.name;
  const freshSchedule = (source.schedule?.name ?? 'constant') !== (fork.schedule?.name ?? 'constant');
  const learningRate = changed.includes('optimizer.learningRate') ? fork.optimizer.learningRate : null;
  return { changed, freshOptimizer, freshSchedule, learningRate };
}

/**
 * The fork's spec before validation: the override merged over the source's spec. Objects merge field by field, except
 * that naming another optimizer or schedule replaces that whole block, so the source's adam betas do not ride along
 * into an sgd fork.
 */
export function mergeForkSpec(source: RunSpec, override: unknown): unknown {
  const merged = mergeSpec(source, override) as Record<string, unknown>;
  const o = (override ?? {}) as Record<string, unknown>;
  for (const block of ['optimizer', 'schedule'] as const) {
    const ob = o[block] as Record<string, unknown> | undefined;
    const sb = source[block] as { name?: string } | undefined;
    if (ob && typeof ob === 'object' && typeof ob.name === 'string' && ob.name !== sb?.name) merged[block] = ob;
  }
  if (o.optimizer && typeof o.optimizer === 'object') {
    const ob = o.optimizer as Record<string, unknown>;
    // A new optimizer without a rate keeps the source's rate: the one block field that means the same for all of them.
    if (merged.optimizer === ob && ob.learningRate === undefined)
      merged.optimizer = { ...ob, learningRate: source.optimizer.learningRate };
  }
  return merged;
}
