// The metrics log of a run: training loss, accuracy, learning rate and samples/s at step resolution, plus the test
// evaluations, stored beside the checkpoints as one small JSON segment per committed checkpoint.
//
// Bounded: every step is kept up to `rawSteps` (a budget); after it, steps are aggregated into buckets whose width
// doubles each time the run doubles in length ((B, 2B] in buckets of 2, (2B, 4B] in buckets of 4, ...), so a run of
// N steps keeps about B + B/2 * log2(N/B) rows (B = 4096, a million steps: ~20k rows, about 4 MB of JSON). Bucket bounds depend on the
// step number alone, never on where a chunk started or ended.
//
// Exact across recoveries: a segment holds the steps (fromStep, toStep] and is written before the checkpoint at
// toStep is committed. Reading follows the chain back from a committed checkpoint's step (toStep -> fromStep ->
// ...), so a segment of a chunk that never committed (a crash) is never read, and a resumed run writes its own
// segments from the checkpoint it restored. A bucket still open at a segment's end is carried into the next segment
// with its running sums, which continues accumulating it in the same order: the numbers are bit-identical to those
// of an uninterrupted run. Knows nothing of Temporal, tfjs or the checkpoint layer: it needs a store of keyed bytes.
import type { EvalResult } from '../training/trainer-types';

/** The part of a checkpoint store the log needs (CheckpointStore has it). */
export interface MetricsStore {
  read(key: string): Promise<Uint8Array>;
  writeAtomic(key: string, data: Uint8Array): Promise<void>;
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}

/** What the trainer reports after each step. */
export interface StepMetrics {
  step: number;
  loss: number;
  /** Classification only. */
  accuracy: number | null;
  learningRate: number;
  samplesPerSec: number;
  /** A model file's weight regularizers: their term of `loss` (absent for a model without). */
  regularizationLoss?: number;
}

/** A value over the steps of a row: for one step all three are that step's value; sum (not mean) keeps exactness. */
export interface Stat {
  sum: number;
  min: number;
  max: number;
}

/**
 * One row of the log: one step (count 1), or a bucket of steps (first..step) aggregated. `step` is the bucket's last
 * step; a bucket still filling (count below its width) sits at the step it will end at.
 */
export interface MetricsRow {
  step: number;
  /** The first step the row covers. */
  first: number;
  /** Steps accumulated so far. */
  count: number;
  loss: Stat;
  accuracy: Stat | null;
  learningRate: Stat;
  samplesPerSec: Stat;
  /** The regularization term of `loss`, for a model with weight regularizers. */
  regularizationLoss?: Stat;
}

/** One evaluation of a split at a step, as the trainer reports it (its one definition: training/trainer-types.ts). */
export type EvalPoint = EvalResult;

/** One evaluation per split and step: a run's last step has its validation and its test result. */
export const evalKey = (e: Pick<EvalPoint, 'step' | 'split'>): string => `${e.split ?? 'test'}:${e.step}`;

export interface MetricsSegment {
  format: typeof SEGMENT_FORMAT;
  runId: string;
  /** Steps (fromStep, toStep]. */
  fromStep: number;
  toStep: number;
  totalSteps: number;
  rawSteps: number;
  /** false for the first segment of the run's own history (a fresh start, or a fork's fork point). */
  continues: boolean;
  rows: MetricsRow[];
  evals: EvalPoint[];
}

export const SEGMENT_FORMAT = 'durable-train.metrics/1';
/** Steps kept one by one before aggregation starts (even: the bucket ranges divide evenly). */
export const DEFAULT_RAW_STEPS = 4096;

export const mean = (s: Stat, count: number): number => s.sum / count;

/** The row a step belongs to: [first, last] steps. Steps are 1-based (step k is the k-th update). */
export function bucketOf(step: number, rawSteps = DEFAULT_RAW_STEPS): { first: number; last: number } {
  if (!(Number.isInteger(step) && step >= 1)) throw new Error(`metrics log: step must be an integer >= 1, got ${step}`);
  if (!(Number.isInteger(rawSteps) && rawSteps >= 2 && rawSteps % 2 === 0))
    throw new Error(`metrics log: rawSteps must be an even integer >= 2, got ${rawSteps}`);
  if (step <= rawSteps) return { first: step, last: step };
  // Range k = 1, 2, ...: steps (B 2^(k-1), B 2^k] in buckets of width 2^k.
  let lower = rawSteps;
  let width = 2;
  while (step > lower * 2) {
    lower *= 2;
    width *= 2;
  }
  const first = lower + Math.floor((step - lower - 1) / width) * width + 1;
  return { first, last: first + width - 1 };
}

const stat = (v: number): Stat => ({ sum: v, min: v, max: v });
function add(s: Stat, v: number): Stat {
  return { sum: s.sum + v, min: Math.min(s.min, v), max: Math.max(s.max, v) };
}

/** Accumulates the steps of one segment. Starts from the open row carried over from the previous segment, if any. */
export class MetricsSegmentWriter {
  private readonly rawSteps: number;
  private rows: MetricsRow[] = [];
  private evals: EvalPoint[] = [];
  private fromStep: number;
  private continues: boolean;

  /**
   * `previous`: the segment this one continues (the one ending at fromStep), whose open bucket it carries on; null
   * when the run's own history starts at fromStep (fresh, or a fork's fork point) or none is stored.
   */
  constructor(
    private readonly runId: string,
    fromStep: number,
    opts: { rawSteps?: number; continues: boolean; carried?: MetricsRow | null },
  ) {
    this.fromStep = fromStep;
    this.rawSteps = opts.rawSteps ?? DEFAULT_RAW_STEPS;
    this.continues = opts.continues;
    const carried = opts.carried ?? null;
    if (carried && carried.step > fromStep && carried.first <= fromStep) this.rows.push(structuredClone(carried));
  }

  get start(): number {
    return this.fromStep;
  }

  record(m: StepMetrics): void {
    // samples/s is wall-clock (it differs between any two runs): one decimal is all it means.
    m = { ...m, samplesPerSec: Math.round(m.samplesPerSec * 10) / 10 };
    const b = bucketOf(m.step, this.rawSteps);
    const last = this.rows[this.rows.length - 1];
    if (last && last.step === b.last) {
      last.count += 1;
      last.loss = add(last.loss, m.loss);
      last.accuracy = last.accuracy && m.accuracy !== null ? add(last.accuracy, m.accuracy) : last.accuracy;
      last.learningRate = add(last.learningRate, m.learningRate);
      last.samplesPerSec = add(last.samplesPerSec, m.samplesPerSec);
      if (last.regularizationLoss && m.regularizationLoss !== undefined)
        last.regularizationLoss = add(last.regularizationLoss, m.regularizationLoss);
      return;
    }
    this.rows.push({
      step: b.last,
      first: b.first,
      count: 1,
      loss: stat(m.loss),
      accuracy: m.accuracy === null ? null : stat(m.accuracy),
      learningRate: stat(m.learningRate),
      samplesPerSec: stat(m.samplesPerSec),
      ...(m.regularizationLoss !== undefined ? { regularizationLoss: stat(m.regularizationLoss) } : {}),
    });
  }

  recordEval(e: EvalPoint): void {
    if (!this.evals.some((x) => evalKey(x) === evalKey(e))) this.evals.push({ ...e });
  }

  /** The segment (fromStep, toStep] to commit; the writer then continues with the next segment from toStep. */
  cut(toStep: number, totalSteps: number): MetricsSegment {
    const seg: MetricsSegment = {
      format: SEGMENT_FORMAT,
      runId: this.runId,
      fromStep: this.fromStep,
      toStep,
      totalSteps,
      rawSteps: this.rawSteps,
      continues: this.continues,
      rows: this.rows.map((r) => structuredClone(r)),
      evals: this.evals.map((e) => ({ ...e })),
    };
    const open = this.rows[this.rows.length - 1];
    this.rows = open && open.step > toStep ? [structuredClone(open)] : [];
    this.evals = [];
    this.fromStep = toStep;
    this.continues = true;
    return seg;
  }
}

/** The segment's open last row (a bucket that continues past its end), or null. */
export function openRow(seg: MetricsSegment): MetricsRow | null {
  const last = seg.rows[seg.rows.length - 1];
  return last && last.step > seg.toStep ? last : null;
}

// ---- storage ----

export const metricsPrefix = (runId: string) => `${runId}/metrics/`;
export const segmentKey = (runId: string, toStep: number) =>
  `${metricsPrefix(runId)}seg-${String(toStep).padStart(12, '0')}.json`;
const SEGMENT_KEY = /\/seg-(\d{12})\.json$/;

/**
 * On disk a row is an array: [step, loss, accuracy, lr, samples/s] for one step, else with sums, mins and maxes; a
 * model with weight regularizers adds their loss term last (regularization loss).
 */
type StoredRow =
  | [number, number, number | null, number, number]
  | [number, number, number | null, number, number, number]
  | [number, number, number, S, S | null, S, S]
  | [number, number, number, S, S | null, S, S, S];
type S = [number, number, number];
const packStat = (s: Stat): S => [s.sum, s.min, s.max];
const unpackStat = (s: S): Stat => ({ sum: s[0], min: s[1], max: s[2] });

function packRow(r: MetricsRow): StoredRow {
  const reg = r.regularizationLoss;
  if (r.count === 1 && r.first === r.step) {
    const one: StoredRow = [r.step, r.loss.sum, r.accuracy?.sum ?? null, r.learningRate.sum, r.samplesPerSec.sum];
    return reg ? [...one, reg.sum] : one;
  }
  const many: StoredRow = [
    r.step,
    r.first,
    r.count,
    packStat(r.loss),
    r.accuracy ? packStat(r.accuracy) : null,
    packStat(r.learningRate),
    packStat(r.samplesPerSec),
  ];
  return reg ? [...many, packStat(reg)] : many;
}

function unpackRow(x: StoredRow): MetricsRow {
  if (x.length === 5 || x.length === 6) {
    const [step, loss, acc, lr, sps, reg] = x;
    return {
      step,
      first: step,
      count: 1,
      loss: stat(loss),
      accuracy: acc === null ? null : stat(acc),
      learningRate: stat(lr),
      samplesPerSec: stat(sps),
      ...(reg !== undefined ? { regularizationLoss: stat(reg) } : {}),
    };
  }
  const [step, first, count, loss, acc, lr, sps, reg] = x;
  return {
    step,
    first,
    count,
    loss: unpackStat(loss),
    accuracy: acc ? unpackStat(acc) : null,
    learningRate: unpackStat(lr),
    samplesPerSec: unpackStat(sps),
    ...(reg !== undefined ? { regularizationLoss: unpackStat(reg) } : {}),
  };
}

export function encodeSegment(seg: MetricsSegment): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ ...seg, rows: seg.rows.map(packRow) }) + '\n');
}

export function decodeSegment(bytes: Uint8Array, key = 'segment'): MetricsSegment {
  let seg: MetricsSegment;
  try {
    seg = JSON.parse(new TextDecoder().decode(bytes)) as MetricsSegment;
  } catch (err) {
    throw new Error(`metrics log ${key}: not JSON (${(err as Error).message})`);
  }
  if (
    seg?.format !== SEGMENT_FORMAT ||
    !Number.isInteger(seg.fromStep) ||
    !Number.isInteger(seg.toStep) ||
    !Array.isArray(seg.rows) ||
    !Array.isArray(seg.evals)
  )
    throw new Error(`metrics log ${key}: not a ${SEGMENT_FORMAT} segment`);
  try {
    return { ...seg, rows: (seg.rows as unknown as StoredRow[]).map(unpackRow) };
  } catch (err) {
    throw new Error(`metrics log ${key}: malformed rows (${(err as Error).message})`);
  }
}

/** Writes the segment (atomically) under the key of its last step: call it before committing the checkpoint there. */
export async function writeSegment(store: MetricsStore, seg: MetricsSegment): Promise<void> {
  await store.writeAtomic(segmentKey(seg.runId, seg.toStep), encodeSegment(seg));
}

/** The steps of the run's stored segments, ascending. */
export async function segmentSteps(store: MetricsStore, runId: string): Promise<number[]> {
  const keys = await store.list(metricsPrefix(runId));
  return keys
    .map((k) => SEGMENT_KEY.exec(k))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** Reads one segment; null when it does not exist. */
export async function readSegment(store: MetricsStore, runId: string, toStep: number): Promise<MetricsSegment | null> {
  const key = segmentKey(runId, toStep);
  let bytes: Uint8Array;
  try {
    bytes = await store.read(key);
  } catch (err) {
    // A store answers a missing key with CheckpointNotFoundError (matched by name: no import of the checkpoint layer).
    if ((err as Error)?.name === 'CheckpointNotFoundError') return null;
    throw err;
  }
  return decodeSegment(bytes, key);
}

/**
 * Drops the segments after `step` (the checkpoint a run resumes from): they belong to work that was never committed.
 * Reading already ignores them; deleting keeps the store tidy. Returns the steps dropped.
 */
export async function dropSegmentsAfter(store: MetricsStore, runId: string, step: number): Promise<number[]> {
  const dropped = (await segmentSteps(store, runId)).filter((s) => s > step);
  for (const s of dropped) await store.delete(segmentKey(runId, s));
  return dropped;
}

/** A run's log as read: the committed segments (oldest first) and the rows and evaluations they hold, merged. */
export interface MetricsLog {
  runId: string;
  segments: Array<Pick<MetricsSegment, 'fromStep' | 'toStep'>>;
  /** Ascending by step; each step (or bucket) once. */
  rows: MetricsRow[];
  evals: EvalPoint[];
  /** The step the chain starts at (0, or a fork's fork point). */
  startStep: number;
  /** Set when the chain breaks before its start (a segment is missing): the earliest step read. */
  gapBefore: number | null;
}

/** Merges a chain of segments (oldest first): a later segment's version of a row (a bucket it went on filling) wins. */
export function mergeSegments(runId: string, chain: MetricsSegment[]): Omit<MetricsLog, 'gapBefore'> {
  const rows = new Map<number, MetricsRow>();
  const evals = new Map<string, EvalPoint>();
  for (const seg of chain) {
    for (const r of seg.rows) rows.set(r.step, r);
    for (const e of seg.evals) evals.set(evalKey(e), e);
  }
  return {
    runId,
    segments: chain.map((s) => ({ fromStep: s.fromStep, toStep: s.toStep })),
    rows: [...rows.values()].sort((a, b) => a.step - b.step),
    evals: [...evals.values()].sort((a, b) => a.step - b.step),
    startStep: chain[0]?.fromStep ?? 0,
  };
}

/**
 * The segments of the run's committed history ending at `endStep` (the step of a committed checkpoint, normally the
 * newest), oldest first. A segment past `endStep`, or off the chain, was never committed and is not read.
 */
export async function readChain(
  store: MetricsStore,
  runId: string,
  endStep: number,
): Promise<{ chain: MetricsSegment[]; gapBefore: number | null }> {
  const have = new Set(await segmentSteps(store, runId));
  const chain: MetricsSegment[] = [];
  let cur = endStep;
  let gapBefore: number | null = null;
  while (cur > 0) {
    if (!have.has(cur)) {
      gapBefore = cur;
      break;
    }
    const key = segmentKey(runId, cur);
    const seg = decodeSegment(await store.read(key), key);
    if (!(seg.fromStep < cur)) throw new Error(`metrics log ${key}: fromStep ${seg.fromStep} is not before ${cur}`);
    chain.unshift(seg);
    cur = seg.fromStep;
    // A fork's first segment starts at its fork point, where this run's own history begins.
    if (!seg.continues) break;
  }
  return { chain, gapBefore };
}

/** The run's metrics log up to the committed checkpoint at `endStep`. */
export async function readMetricsLog(store: MetricsStore, runId: string, endStep: number): Promise<MetricsLog> {
  const { chain, gapBefore } = await readChain(store, runId, endStep);
  return { ...mergeSegments(runId, chain), gapBefore };
}

/** The points of one series at step resolution (bucket means at the bucket's last step). */
export function seriesOf(
  log: Pick<MetricsLog, 'rows'>,
  what: 'loss' | 'accuracy' | 'learningRate' | 'samplesPerSec' | 'regularizationLoss',
): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const r of log.rows) {
    const s = r[what];
    if (s) out.push([Math.min(r.step, r.first + r.count - 1), s.sum / r.count]);
  }
  return out;
}
