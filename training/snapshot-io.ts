// Reading a snapshot back: the byte helpers, the checks of its state, and its tensors matched by stable name to the
// model's weights and the optimizer's slots. Throws an Error naming any missing, unexpected or mismatched tensor.
import { endianness } from 'os';
import type * as tf from '@tensorflow/tfjs';
import type { Net } from './models';
import type { Optimizer } from './optimizers';
import { DATA_ORDER_NAME, type NamedTensorBytes, type TrainerState } from './trainer-types';
import { epochStartStep, epochStepsOf } from './topology';

export function checkLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('trainer: snapshots are little-endian; this host is big-endian');
}

/** A copy of `a`'s bytes, in memory of its own (never shared, even when `a`'s is). */
export function bytesOf(a: Float32Array | Int32Array): Uint8Array {
  const out = new Uint8Array(a.byteLength);
  out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return out;
}

/**
 * The rows (of `rows` equal rows along the first dimension) where `next` differs from `prev`, ascending; undefined when
 * more than half differ (storing the whole tensor is then as cheap). Rows compare with memcmp (Buffer#compare), so an
 * unchanged tensor costs one pass at memory speed and a tensor that changed everywhere stops after half its rows.
 */
export function rowsThatDiffer(prev: Uint8Array, next: Uint8Array, rows: number): Uint32Array | undefined {
  if (rows < 2 || next.byteLength !== prev.byteLength || next.byteLength % rows !== 0) return undefined;
  const a = Buffer.from(prev.buffer, prev.byteOffset, prev.byteLength);
  const b = Buffer.from(next.buffer, next.byteOffset, next.byteLength);
  if (a.equals(b)) return new Uint32Array(0);
  const width = b.byteLength / rows;
  const out = new Uint32Array(rows >> 1);
  let n = 0;
  for (let r = 0, at = 0; r < rows; r++, at += width) {
    if (b.compare(a, at, at + width, at, at + width) === 0) continue;
    if (n === out.length) return undefined;
    out[n++] = r;
  }
  return out.slice(0, n);
}

export function copyBytes(data: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  return copy.buffer;
}

export function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Checks a snapshot's counters against themselves and against the spec's step counts. */
export function checkState(st: TrainerState, stepsPerEpoch: number, totalSteps: number, epochEndPending = false): void {
  const p = { stepsPerEpoch, totalSteps };
  const ints = ['step', 'epoch', 'batchInEpoch', 'stepsPerEpoch', 'totalSteps'] as const;
  for (const k of ints) {
    if (!(Number.isInteger(st[k]) && st[k] >= 0))
      throw new Error(`snapshot state: ${k} must be an integer >= 0, got ${st[k]}`);
  }
  if (st.stepsPerEpoch !== p.stepsPerEpoch) {
    throw new Error(
      `snapshot state: stepsPerEpoch is ${st.stepsPerEpoch} but this spec gives ${p.stepsPerEpoch} (dataset.trainLimit or batchSize changed)`,
    );
  }
  // A replica of a distributed run may stop right after an epoch's last step, its end left to the round's sync.
  // After a change of the replica count, the epoch under way then has its own length and epochs start elsewhere.
  const epochSteps = epochStepsOf(st.topology, st.epoch, st.stepsPerEpoch);
  const maxBatch = epochEndPending ? epochSteps : epochSteps - 1;
  let start: number;
  try {
    start = epochStartStep(st.topology, st.epoch, st.stepsPerEpoch);
  } catch (err) {
    throw new Error(`snapshot state: ${(err as Error).message}`);
  }
  if (st.batchInEpoch > maxBatch || st.step !== start + st.batchInEpoch) {
    throw new Error(`snapshot state: step ${st.step} does not match epoch ${st.epoch} / batch ${st.batchInEpoch}`);
  }
  if (st.step > p.totalSteps)
    throw new Error(`snapshot state: step ${st.step} is past this spec's ${p.totalSteps} total steps`);
}

/** The snapshot's tensors for `net` and `opt` (unless `freshOptimizer`), and the data order of an epoch of `n`. */
export function takeTensors(
  net: Net,
  opt: Optimizer,
  tensors: NamedTensorBytes[],
  n: number,
  opts: { freshOptimizer?: boolean },
): { assignments: Array<[tf.Variable, Float32Array, number[]]>; iterations: number; order: Int32Array } {
  const p = { net, opt };
  const given = new Map<string, NamedTensorBytes>();
  for (const t of tensors) {
    if (given.has(t.name)) throw new Error(`snapshot: tensor ${t.name} appears twice`);
    given.set(t.name, t);
  }
  const take = (name: string, dtype: 'float32' | 'int32', shape: number[]): ArrayBuffer => {
    const t = given.get(name);
    if (!t) throw new Error(`snapshot: missing tensor ${name}`);
    given.delete(name);
    if (t.dtype !== dtype || !Array.isArray(t.shape) || !sameShape(t.shape, shape)) {
      throw new Error(
        `snapshot: tensor ${name} is ${t.dtype} ${JSON.stringify(t.shape)}, expected ${dtype} ${JSON.stringify(shape)}`,
      );
    }
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    if (!(t.data instanceof Uint8Array) || t.data.byteLength !== bytes) {
      throw new Error(`snapshot: tensor ${name} has ${t.data?.byteLength} bytes, expected ${bytes}`);
    }
    return copyBytes(t.data);
  };

  const assignments: Array<[tf.Variable, Float32Array, number[]]> = [];
  for (const prm of [...p.net.all].sort(byName)) {
    assignments.push([prm.variable, new Float32Array(take(prm.name, 'float32', prm.shape)), prm.shape]);
  }
  let iterations = 0;
  if (opts.freshOptimizer) {
    for (const name of [...given.keys()]) if (name.startsWith('opt/')) given.delete(name);
  } else {
    for (const [name, v] of p.opt.slotEntries()) {
      assignments.push([v, new Float32Array(take(name, 'float32', v.shape)), v.shape]);
    }
    iterations = new Int32Array(take(p.opt.iterationsName, 'int32', []))[0];
    if (iterations < 0) throw new Error(`snapshot: ${p.opt.iterationsName} is negative`);
  }
  const order = new Int32Array(take(DATA_ORDER_NAME, 'int32', [n]));
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const j = order[i];
    if (!(j >= 0 && j < n) || seen[j])
      throw new Error(`snapshot: ${DATA_ORDER_NAME} is not a permutation of 0..${n - 1}`);
    seen[j] = 1;
  }
  if (given.size > 0) {
    throw new Error(`snapshot: unexpected tensor(s) ${[...given.keys()].join(', ')} (different model or optimizer?)`);
  }
  return { assignments, iterations, order };
}
