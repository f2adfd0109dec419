// Data-parallel rounds, the pure part: which examples of an epoch each replica trains on, each replica's own random
// stream, and how a round combines the replicas' weights (a plain average, or Nesterov momentum on the averaged
// pseudo-gradient, as in DiLoCo). No tfjs, no Temporal: plain float32 arrays, combined in a fixed replica order so the
// result does not depend on which worker finished first.
import { Prng, type PrngState } from './prng';

/** Where a replica's shard lies in an epoch's order: positions [start, start + rows) of the permutation. */
export interface Shard {
  start: number;
  rows: number;
}

/**
 * The shard of replica `index` of `replicas` in an epoch of `n` examples: contiguous, equal blocks of the epoch's
 * (seeded) permutation, so each epoch's partition is fixed by the seed. The last n mod replicas positions of each
 * permutation are left out (different examples each epoch); one replica's shard is the whole epoch.
 */
export function shardOf(n: number, replicas: number, index: number): Shard {
  if (!(Number.isInteger(replicas) && replicas >= 1))
    throw new Error(`replicas must be an integer >= 1, got ${replicas}`);
  if (!(Number.isInteger(index) && index >= 0 && index < replicas))
    throw new Error(`replica index must be an integer in [0, ${replicas}), got ${index}`);
  const rows = Math.floor(n / replicas);
  if (rows < 1) throw new Error(`${replicas} replicas leave no example per shard of ${n}`);
  return { start: index * rows, rows };
}

/**
 * The PRNG state replica `index` starts with (dropout, augmentation). Replica 0 continues the run's own stream (so one
 * replica is exactly the single-worker run, and the next epoch's order is drawn from it); every other replica gets a
 * stream of its own, derived from the run seed and its index.
 */
export function replicaPrngState(seed: number, index: number): PrngState {
  if (index === 0) throw new Error('replica 0 continues the run stream; it has no derived stream');
  // splitmix-style mixing of (seed, index) into one 32-bit seed.
  let z = (seed ^ Math.imul(index, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return Prng.fromSeed((z ^ (z >>> 16)) >>> 0).getState();
}

export type OuterName = 'average' | 'nesterov';

export interface OuterSpec {
  name: OuterName;
  learningRate?: number;
  momentum?: number;
}

/** Mean of the replicas' values of one tensor, in replica order, accumulated in float64, rounded once to float32. */
export function averageOf(values: readonly Float32Array[]): Float32Array {
  if (values.length === 0) throw new Error('averageOf: no replicas');
  const len = values[0].length;
  for (const v of values) if (v.length !== len) throw new Error(`averageOf: lengths differ (${len} vs ${v.length})`);
  const out = new Float32Array(len);
  const n = values.length;
  for (let i = 0; i < len; i++) {
    let s = 0;
    for (let r = 0; r < n; r++) s += values[r][i];
    out[i] = s / n;
  }
  return out;
}

/**
 * One outer step. `average`: the new global weights are the replicas' mean. `nesterov`: with the pseudo-gradient
 * g = global - mean, buf = momentum * buf + g and global -= lr * (g + momentum * buf) (PyTorch's SGD with Nesterov,
 * the outer optimizer of DiLoCo). Returns the new weights and the new momentum buffer (null for average).
 */
export function outerStep(
  outer: OuterSpec,
  global: Float32Array,
  replicas: readonly Float32Array[],
  buffer: Float32Array | null,
): { weights: Float32Array; buffer: Float32Array | null } {
  const mean = averageOf(replicas);
  if (outer.name === 'average') return { weights: mean, buffer: null };
  if (outer.name !== 'nesterov') throw new Error(`unknown outer optimizer ${JSON.stringify(outer.name)}`);
  if (global.length !== mean.length) throw new Error('outerStep: global and replica sizes differ');
  const lr = outer.learningRate ?? 0.7;
  const mu = outer.momentum ?? 0.9;
  const buf = new Float32Array(mean.length);
  const weights = new Float32Array(mean.length);
  for (let i = 0; i < mean.length; i++) {
    const g = Math.fround(global[i] - mean[i]);
    const b = Math.fround(mu * (buffer ? buffer[i] : 0) + g);
    buf[i] = b;
    weights[i] = global[i] - lr * Math.fround(g + mu * b);
  }
  return { weights, buffer: buf };
}

/** The sibling run id under which replica `index` of run `runId` keeps its round results in the store. */
export function replicaRunId(runId: string, index: number): string {
  return `${runId}.replica-${index}`;
}

/** Blob names of the global checkpoint for what is not the lead replica's: other replicas' slots, outer state. */
export const DIST_PREFIX = 'dist/';
export const replicaSlotName = (index: number, slot: string) => `${DIST_PREFIX}replica-${index}/${slot}`;
export const outerBufferName = (param: string) => `${DIST_PREFIX}outer/${param}`;
