// Bitwise comparison of a trainer's tensors with stored ones: the drill's proof that a restored checkpoint reproduces
// the training that followed it. Pure; names the first differing element with both values, so a report says exactly
// where two states part.

export interface StoredTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

export interface TensorDifference {
  name: string;
  reason: string;
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

function element(data: Uint8Array, dtype: string, index: number): string {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (dtype === 'float32') {
    const v = view.getFloat32(index * 4, true);
    // Values that print alike but differ in bits (-0 and 0, NaN payloads) show their bits.
    return Object.is(v, -0) || Number.isNaN(v) ? `${v} (0x${view.getUint32(index * 4, true).toString(16)})` : String(v);
  }
  if (dtype === 'int32') return String(view.getInt32(index * 4, true));
  return `0x${data[index].toString(16).padStart(2, '0')}`;
}

/** The first byte at which a and b differ (or the shorter length when one is a prefix of the other), or -1. */
export function firstDifferingByte(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.byteLength === b.byteLength ? -1 : n;
}

/** Whether a and b hold the same float32 bits, except that a zero of either sign matches a zero of either sign. */
export function sameButZeroSigns(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i] && ((x[i] | y[i]) & 0x7fffffff) !== 0) return false;
  }
  return true;
}

/** What differs between `actual` and `expected` (dtype, shape, or the first differing element), or null if equal. */
export function compareTensor(actual: StoredTensor, expected: StoredTensor): string | null {
  if (actual.dtype !== expected.dtype) return `dtype ${actual.dtype}, expected ${expected.dtype}`;
  if (!sameShape(actual.shape, expected.shape))
    return `shape ${JSON.stringify(actual.shape)}, expected ${JSON.stringify(expected.shape)}`;
  const at = firstDifferingByte(actual.data, expected.data);
  if (at < 0) return null;
  if (actual.data.byteLength !== expected.data.byteLength)
    return `${actual.data.byteLength} bytes, expected ${expected.data.byteLength}`;
  const width = actual.dtype === 'float32' || actual.dtype === 'int32' ? 4 : 1;
  const index = Math.floor(at / width);
  let count = 0;
  for (let i = index; i < actual.data.byteLength / width; i++) {
    const o = i * width;
    for (let k = 0; k < width; k++) {
      if (actual.data[o + k] !== expected.data[o + k]) {
        count++;
        break;
      }
    }
  }
  return (
    `element ${index} differs (replayed ${element(actual.data, actual.dtype, index)}, ` +
    `stored ${element(expected.data, expected.dtype, index)}); ${count} of ${actual.data.byteLength / width} elements differ`
  );
}

/**
 * Compares every tensor by stable name: each one of `actual` must be in `expected` with the same bytes, and
 * `expected` must hold nothing more. Returns the differences, in `actual`'s order, then the extra expected ones.
 */
export function compareTensors(actual: StoredTensor[], expected: StoredTensor[]): TensorDifference[] {
  const byName = new Map(expected.map((t) => [t.name, t]));
  const out: TensorDifference[] = [];
  for (const a of actual) {
    const e = byName.get(a.name);
    byName.delete(a.name);
    if (!e) {
      out.push({ name: a.name, reason: 'missing from the stored checkpoint' });
      continue;
    }
    const reason = compareTensor(a, e);
    if (reason) out.push({ name: a.name, reason });
  }
  for (const name of byName.keys()) out.push({ name, reason: 'stored, but the replayed trainer has no such tensor' });
  return out;
}
