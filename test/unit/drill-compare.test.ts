// The drill's bitwise comparison (training/compare.ts): equal tensors give nothing; a difference names the tensor, the
// first differing element with both values and how many differ; missing and extra tensors are named.
import * as assert from 'node:assert/strict';
import {
  compareTensor,
  compareTensors,
  firstDifferingByte,
  sameButZeroSigns,
  type StoredTensor,
} from '../../training/compare';

const f32 = (name: string, values: number[], shape = [values.length]): StoredTensor => ({
  name,
  dtype: 'float32',
  shape,
  data: new Uint8Array(Float32Array.from(values).buffer),
});
const i32 = (name: string, values: number[]): StoredTensor => ({
  name,
  dtype: 'int32',
  shape: [values.length],
  data: new Uint8Array(Int32Array.from(values).buffer),
});

describe('drill comparison: bit for bit, naming the first difference', function () {
  it('equal bytes are equal, including NaN payloads and signed zeros compared as bits', function () {
    assert.equal(compareTensor(f32('w', [1, 2, 3]), f32('w', [1, 2, 3])), null);
    assert.equal(compareTensor(f32('w', [NaN]), f32('w', [NaN])), null);
    // -0 === 0 as numbers, but not as bits: a drill is about bits.
    assert.equal(
      compareTensor(f32('w', [0]), f32('w', [-0])),
      'element 0 differs (replayed 0, stored 0 (0x80000000)); 1 of 1 elements differ',
    );
  });

  it('names the first differing element with both values and counts the differing ones', function () {
    const r = compareTensor(f32('w', [1, 2, 3, 4, 5]), f32('w', [1, 2, 3.5, 4, 6]));
    assert.equal(r, 'element 2 differs (replayed 3, stored 3.5); 2 of 5 elements differ');
    assert.equal(
      compareTensor(i32('opt/iterations', [7]), i32('opt/iterations', [8])),
      'element 0 differs (replayed 7, stored 8); 1 of 1 elements differ',
    );
  });

  it('one flipped bit in the last byte of an element is found', function () {
    const a = f32('w', [1, 2, 3]);
    const b = f32('w', [1, 2, 3]);
    b.data[7] ^= 0x01;
    assert.equal(firstDifferingByte(a.data, b.data), 7);
    assert.match(compareTensor(a, b) ?? '', /^element 1 differs/);
  });

  it('dtype, shape and size differences are named', function () {
    assert.match(compareTensor(f32('w', [1]), i32('w', [1])) ?? '', /dtype float32, expected int32/);
    assert.match(
      compareTensor(f32('w', [1, 2], [2, 1]), f32('w', [1, 2], [1, 2])) ?? '',
      /shape \[2,1\], expected \[1,2\]/,
    );
    const short = { ...f32('w', [1, 2]), data: new Uint8Array(4) };
    assert.match(compareTensor(f32('w', [1, 2]), short) ?? '', /8 bytes, expected 4/);
  });

  it('compares by stable name, whatever the order; missing and extra tensors are named', function () {
    const replayed = [f32('a', [1]), f32('b', [2]), f32('c', [3])];
    const stored = [f32('d', [4]), f32('b', [2]), f32('a', [1.5])];
    assert.deepEqual(compareTensors(replayed, stored), [
      { name: 'a', reason: 'element 0 differs (replayed 1, stored 1.5); 1 of 1 elements differ' },
      { name: 'c', reason: 'missing from the stored checkpoint' },
      { name: 'd', reason: 'stored, but the replayed trainer has no such tensor' },
    ]);
    assert.deepEqual(compareTensors([f32('a', [1]), f32('b', [2])], [f32('b', [2]), f32('a', [1])]), []);
  });

  it('sameButZeroSigns: a zero matches a zero of either sign; any other bit, NaN payload or length differs', function () {
    const f = (...v: number[]) => Float32Array.from(v);
    assert.equal(sameButZeroSigns(f(1, -0, 0, 2.5), f(1, 0, -0, 2.5)), true);
    assert.equal(sameButZeroSigns(f(1, 0), f(1, 1e-45)), false, 'the smallest denormal is not a zero');
    assert.equal(sameButZeroSigns(f(-1e-45), f(-0)), false);
    assert.equal(sameButZeroSigns(f(1, 2), f(1, 2.0000002)), false);
    assert.equal(sameButZeroSigns(f(1, 2), f(1)), false);
    const nan = new Float32Array(new Uint32Array([0x7fc00001]).buffer);
    assert.equal(sameButZeroSigns(nan, f(NaN)), false, 'NaN payloads compare as bits');
    assert.equal(sameButZeroSigns(new Float32Array(3).subarray(1), f(0, -0)), true, 'views at an offset');
  });
});
