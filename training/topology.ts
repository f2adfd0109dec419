// A change of the replica count (spec.distributed.replicas, 1 without it) at resume or fork, the pure part: how the
// rest of the epoch under way is shared out, where epochs start and end from then on, and what the trainer state
// records of it. No tfjs: plain numbers, so the workflow's activities, the CLI and the trainer agree on every step.
//
// The rule: the positions of the current epoch's order that no replica has trained yet (with the old count's layout)
// form the *transition*: they are split into equal contiguous parts, one per new replica, and each part into the same
// number of steps, T = ceil(ceil(m / replicas) / batchSize) for m positions left, with batches as even as possible
// (never larger than batchSize). So every example of that epoch is trained exactly once. From the next epoch on, the
// new count's usual shards apply. A change at an epoch's first step needs no transition.
import { Prng, type PrngState } from './prng';
import { shardOf } from './replicas';

/** Positions [start, end) of an epoch's order. */
export type Range = [start: number, end: number];

export interface TopologyChange {
  step: number;
  epoch: number;
  from: number;
  to: number;
}

/** What a trainer state records once the replica count has changed (absent in runs that never changed it). */
export interface Topology {
  /** The replica count the state is laid out for. */
  replicas: number;
  /** Epochs from `anchorEpoch` on start at `anchorStep` + k * stepsPerEpoch. */
  anchorStep: number;
  anchorEpoch: number;
  /** The epoch finished over the positions left when the count changed; null when it changed at an epoch start. */
  transition: { epoch: number; startStep: number; ranges: Range[]; steps: number } | null;
  /** Every change, oldest first (the run's lineage of layouts). */
  changes: TopologyChange[];
}

/** The part of the topology a layout needs; a trainer state carries it as `topology`. */
interface Laid {
  step: number;
  epoch: number;
  batchInEpoch: number;
  topology?: Topology;
  distributed?: { replicas?: number };
}

export class TopologyError extends Error {}

/** Why a checkpoint trained by `from` replicas does not continue with `to` without the spec's consent. */
export function topologyRefusal(from: number, to: number): string {
  const n = (k: number) => `${k} replica${k === 1 ? '' : 's'}`;
  return (
    `the checkpoint was trained by ${n(from)}, the spec has ${n(to)} (distributed.replicas): the data would be ` +
    `re-sharded and the run would no longer be bit-identical to an unchanged one; set resume.allowTopologyChange to continue with ${to}`
  );
}

/** The replica count a trainer state (or a round checkpoint's state) was trained with. */
export function recordedReplicas(st: { topology?: Topology; distributed?: { replicas?: number } }): number {
  return st.topology?.replicas ?? st.distributed?.replicas ?? 1;
}

/** Part `i` of `m` items split into `k` contiguous parts whose sizes differ by at most one. */
export function partOf(m: number, k: number, i: number): Range {
  return [Math.floor((i * m) / k), Math.floor(((i + 1) * m) / k)];
}

export const rangesLength = (ranges: readonly Range[]) => ranges.reduce((a, [s, e]) => a + e - s, 0);

/** Items [from, to) of the positions `ranges` list, in order, as ranges. */
export function sliceRanges(ranges: readonly Range[], from: number, to: number): Range[] {
  const out: Range[] = [];
  let offset = 0;
  for (const [s, e] of ranges) {
    const lo = Math.max(s, s + from - offset);
    const hi = Math.min(e, s + to - offset);
    if (lo < hi) out.push([lo, hi]);
    offset += e - s;
    if (offset >= to) break;
  }
  return out;
}

/** One replica's share of the current epoch: the positions of the order it trains, in how many steps. */
export interface EpochPlan {
  ranges: Range[];
  rows: number;
  steps: number;
  /** Batches of batchSize (the last one partial), or (a transition) `rows` split evenly over `steps`. */
  even: boolean;
  batchSize: number;
}

/** Batch `k` of a plan: offsets [lo, hi) into its positions. */
export function batchBounds(plan: EpochPlan, k: number): Range {
  if (plan.even) return partOf(plan.rows, plan.steps, k);
  return [k * plan.batchSize, Math.min((k + 1) * plan.batchSize, plan.rows)];
}

/** Replica `replica`'s plan for `epoch` of an order of `n` positions, with `replicas` replicas (the spec's count). */
export function planOf(
  topology: Topology | undefined,
  epoch: number,
  n: number,
  replicas: number,
  replica: number,
  batchSize: number,
): EpochPlan {
  const tr = topology?.transition;
  if (tr && epoch === tr.epoch) {
    const [lo, hi] = partOf(rangesLength(tr.ranges), replicas, replica);
    return { ranges: sliceRanges(tr.ranges, lo, hi), rows: hi - lo, steps: tr.steps, even: true, batchSize };
  }
  const shard = shardOf(n, replicas, replica);
  const steps = Math.ceil(shard.rows / batchSize);
  return { ranges: [[shard.start, shard.start + shard.rows]], rows: shard.rows, steps, even: false, batchSize };
}

/** Steps of `epoch`: the transition's when the count changed during it, else the count's steps per epoch. */
export function epochStepsOf(topology: Topology | undefined, epoch: number, stepsPerEpoch: number): number {
  const tr = topology?.transition;
  return tr && epoch === tr.epoch ? tr.steps : stepsPerEpoch;
}

/** The step the current epoch of a state started at. */
export function epochStartStep(topology: Topology | undefined, epoch: number, stepsPerEpoch: number): number {
  if (!topology) return epoch * stepsPerEpoch;
  const tr = topology.transition;
  if (tr && epoch === tr.epoch) return tr.startStep;
  if (epoch < topology.anchorEpoch)
    throw new TopologyError(`epoch ${epoch} lies before the replica count's change (epoch ${topology.anchorEpoch})`);
  return topology.anchorStep + (epoch - topology.anchorEpoch) * stepsPerEpoch;
}

/** Steps of the whole run: the epochs after the last change at the new count's steps per epoch. */
export function totalStepsOf(topology: Topology | undefined, epochs: number, stepsPerEpoch: number): number {
  if (!topology) return epochs * stepsPerEpoch;
  // A spec whose epochs end before the epoch the change happened in ends no later than the change (nothing is left
  // to train): it never trains that epoch's transition.
  if (epochs < topology.anchorEpoch) return topology.transition?.startStep ?? topology.anchorStep;
  return topology.anchorStep + (epochs - topology.anchorEpoch) * stepsPerEpoch;
}

/** Steps per epoch with `replicas` replicas over `n` examples in batches of `batchSize`. */
export const stepsPerEpochOf = (n: number, replicas: number, batchSize: number) =>
  Math.ceil(Math.floor(n / replicas) / batchSize);

/** The positions of the current epoch no replica has trained yet (the old layout's). */
function untrained(st: Laid, n: number, from: number, batchSize: number): Range[] {
  const tr = st.topology?.transition;
  const inTransition = !!tr && st.epoch === tr.epoch;
  const left: Range[] = [];
  for (let r = 0; r < from; r++) {
    const plan = planOf(st.topology, st.epoch, n, from, r, batchSize);
    if (st.batchInEpoch > plan.steps)
      throw new TopologyError(`batch ${st.batchInEpoch} is past the ${plan.steps} steps of epoch ${st.epoch + 1}`);
    const done = st.batchInEpoch === plan.steps ? plan.rows : batchBounds(plan, st.batchInEpoch)[0];
    left.push(...sliceRanges(plan.ranges, done, plan.rows));
  }
  // The old count's epochs leave out the order's last n mod replicas positions: the transition trains them too.
  const covered = Math.floor(n / from) * from;
  if (!inTransition && covered < n) left.push([covered, n]);
  // Adjacent ranges merge (a state's record stays short).
  const merged: Range[] = [];
  for (const r of left) {
    const last = merged[merged.length - 1];
    if (last && last[1] === r[0]) last[1] = r[1];
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

/**
 * The state `st` (trained with recordedReplicas(st) replicas) laid out for `to` replicas: the transition of the
 * current epoch, where epochs start from then on, the run's steps. Throws a TopologyError when the positions left in
 * the epoch cannot give every new replica at least one example per step.
 */
export function changeTopology<S extends Laid & { stepsPerEpoch: number; totalSteps: number }>(
  st: S,
  to: number,
  n: number,
  batchSize: number,
  epochs: number,
): S {
  const from = recordedReplicas(st);
  if (!(Number.isInteger(to) && to >= 1)) throw new TopologyError(`replicas must be an integer >= 1, got ${to}`);
  if (from === to) return st;
  const spe = stepsPerEpochOf(n, to, batchSize);
  if (spe < 1) throw new TopologyError(`${to} replicas leave no training example per shard (${n} examples)`);
  const tr = st.topology?.transition;
  const atEpochStart = st.batchInEpoch === 0 && !(tr && st.epoch === tr.epoch);
  let transition: Topology['transition'] = null;
  let anchorStep = st.step;
  let anchorEpoch = st.epoch;
  if (!atEpochStart) {
    const ranges = untrained(st, n, from, batchSize);
    const m = rangesLength(ranges);
    const steps = Math.ceil(Math.ceil(m / to) / batchSize);
    if (Math.floor(m / to) < steps || m === 0)
      throw new TopologyError(
        `the ${m} example(s) left in epoch ${st.epoch + 1} at step ${st.step} cannot be shared by ${to} replicas ` +
          `(each needs an example per step); resume with fewer replicas, or from a checkpoint at an epoch's start`,
      );
    transition = { epoch: st.epoch, startStep: st.step, ranges, steps };
    anchorStep = st.step + steps;
    anchorEpoch = st.epoch + 1;
  }
  const topology: Topology = {
    replicas: to,
    anchorStep,
    anchorEpoch,
    transition,
    changes: [...(st.topology?.changes ?? []), { step: st.step, epoch: st.epoch, from, to }],
  };
  const out = { ...st, batchInEpoch: 0, stepsPerEpoch: spe, topology };
  delete (out as Laid).distributed;
  return { ...out, totalSteps: totalStepsOf(topology, epochs, spe) };
}

/** Where a spec's run stands after a possible change: what the workflow's rounds need (steps per epoch, total, the
 *  step its epochs are counted from). */
export function layoutAfter(
  st: Laid & { stepsPerEpoch: number; totalSteps: number },
  to: number,
  n: number,
  batchSize: number,
  epochs: number,
): { stepsPerEpoch: number; totalSteps: number; epochAnchor: number } {
  const laid = changeTopology(st, to, n, batchSize, epochs);
  const spe = stepsPerEpochOf(n, to, batchSize);
  return {
    stepsPerEpoch: spe,
    totalSteps: totalStepsOf(laid.topology, epochs, spe),
    epochAnchor: laid.topology?.anchorStep ?? 0,
  };
}

/**
 * The random stream of replica `index` that joins a run at `step` (a change to more replicas): derived from the run
 * seed, the index and the step, so a replica that leaves and joins again does not repeat its earlier masks.
 */
export function joiningPrngState(seed: number, index: number, step: number): PrngState {
  let z = (seed ^ Math.imul(index, 0x9e3779b9) ^ Math.imul(step + 1, 0x7feb352d)) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  return Prng.fromSeed((z ^ (z >>> 13)) >>> 0).getState();
}
