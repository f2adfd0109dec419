// Our wasm MaxPoolGrad, Sum and Identity against the backend's own kernels, byte for byte (training resumes from checkpoints
// written with either, so they must agree exactly: ties, all-zero windows, -0, the rows a 'valid' pool skips,
// float32 rounding of long sums).
import * as assert from 'assert';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../../training/backend';
import { backendMaxPoolGradWasm, maxPoolGradWasm } from '../../training/kernels/wasm-max-pool-grad';
import { backendSumWasm, sumWasm } from '../../training/kernels/wasm-sum';
import { castWasm, identityWasm } from '../../training/kernels/wasm-no-copy';

/** Relu-like values: a third zeros (so whole windows tie at 0), repeats, negatives, -0 and tiny denormals. */
function inputValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const r = s / 2 ** 32;
    out[i] = r < 0.33 ? 0 : r < 0.4 ? -0 : r < 0.45 ? 1e-40 : r < 0.5 ? -r : r < 0.6 ? 0.5 : Math.fround(r);
  }
  return out;
}

function gradValues(n: number, seed: number): Float32Array {
  const v = inputValues(n, seed + 17).map((x, i) => (i % 3 === 0 ? -x : x) - 0.25);
  v[1] = -0;
  v[2] = Infinity;
  return v;
}

function run(
  kernel: typeof maxPoolGradWasm,
  shape: [number, number, number, number],
  pool: number | [number, number],
  strides: number | [number, number],
  pad: 'valid' | 'same',
  seed: number,
): Float32Array {
  const backend = tf.backend() as BackendWasm;
  return tf.tidy(() => {
    const x = tf.tensor4d(inputValues(tf.util.sizeFromShape(shape), seed), shape);
    const y = tf.maxPool(x, pool, strides, pad);
    const dy = tf.tensor(gradValues(y.size, seed), y.shape);
    const info = kernel({
      inputs: { dy, input: x, output: y },
      backend,
      attrs: { filterSize: pool, strides, pad, dimRoundingMode: undefined } as unknown as tf.NamedAttrMap,
    });
    const values = (backend.readSync(info.dataId) as Float32Array).slice();
    backend.disposeData(info.dataId);
    return values;
  });
}

function assertSameFloats(a: Float32Array, b: Float32Array, what: string): void {
  assert.strictEqual(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue; // a NaN's payload is not part of the contract
    if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} is ${a[i]} (0x${ua[i].toString(16)}), backend ${b[i]}`);
  }
}

describe('wasm MaxPoolGrad kernel', function () {
  this.timeout(120_000);
  before(async () => {
    await initBackend('wasm');
  });

  it('is the registered kernel', () => {
    assert.strictEqual(tf.getKernel('MaxPoolGrad', 'wasm')?.kernelFunc, maxPoolGradWasm);
  });

  const tiled: Array<[[number, number, number, number], number | [number, number]]> = [
    [[2, 6, 6, 3], 2],
    [[3, 11, 11, 4], 2], // the mnist-cnn's second pool: row and column 10 belong to no window
    [[2, 9, 7, 2], 3],
    [
      [2, 8, 9, 3],
      [2, 3],
    ],
    [[64, 26, 26, 32], 2], // the mnist-cnn's first pool at batch 64
  ];
  for (const [shape, pool] of tiled) {
    it(`equals the backend's kernel bit for bit: x [${shape}], pool ${pool}`, () => {
      for (const seed of tf.util.sizeFromShape(shape) > 1e6 ? [1] : [1, 2, 3]) {
        const ours = run(maxPoolGradWasm, shape, pool, pool, 'valid', seed);
        const theirs = run(backendMaxPoolGradWasm, shape, pool, pool, 'valid', seed);
        assertSameFloats(ours, theirs, `x [${shape}] seed ${seed}`);
        // The inputs do exercise the edge cases: some gradient lands, and most of dx is zero.
        assert.ok(ours.some((v) => v !== 0) && ours.filter((v) => v === 0).length > ours.length / 2);
      }
    });
  }

  it("leaves overlapping or padded pools to the backend's kernel (same result)", () => {
    for (const [pool, strides, pad] of [
      [3, 1, 'valid'],
      [2, 2, 'same'],
      [3, 2, 'valid'],
    ] as const) {
      const ours = run(maxPoolGradWasm, [2, 7, 7, 3], pool, strides, pad, 5);
      const theirs = run(backendMaxPoolGradWasm, [2, 7, 7, 3], pool, strides, pad, 5);
      assertSameFloats(ours, theirs, `pool ${pool} strides ${strides} ${pad}`);
    }
  });

  it('gives the gradient of tf.maxPool through tf.grad, with no tensor left behind', () => {
    const before = tf.memory().numTensors;
    const g = tf.tidy(() => {
      const x = tf.tensor4d([1, 3, 2, 0, 5, 5, 0, 0, 4, 1, 1, 4, 0, 0, 0, 0], [1, 4, 4, 1]);
      return tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid')))(x);
    });
    // Windows (row-major): {1,3,5,5} -> the last 5; {2,0,0,0} -> 2; {4,1,0,0} -> 4; {1,4,0,0} -> 4.
    assert.deepStrictEqual(Array.from(g.dataSync()), [0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0]);
    g.dispose();
    assert.strictEqual(tf.memory().numTensors, before);
  });
});

describe('wasm Sum kernel', function () {
  this.timeout(120_000);
  before(async () => {
    await initBackend('wasm');
  });

  function sumWith(kernel: typeof sumWasm, shape: number[], axis: number | number[], keepDims: boolean, seed: number) {
    const backend = tf.backend() as BackendWasm;
    return tf.tidy(() => {
      // Values of mixed magnitude, so the float32 sum depends on the order of the additions.
      const v = gradValues(tf.util.sizeFromShape(shape), seed).map((a, i) => (i % 7 === 0 ? a * 1e4 : a));
      const x = tf.tensor(v, shape);
      const info = kernel({
        inputs: { x },
        backend,
        attrs: { axis, keepDims } as unknown as tf.NamedAttrMap,
      });
      const values = (backend.readSync(info.dataId) as Float32Array).slice();
      const outShape = info.shape.slice();
      backend.disposeData(info.dataId);
      return { values, outShape };
    });
  }

  it('is the registered kernel', () => {
    assert.strictEqual(tf.getKernel('Sum', 'wasm')?.kernelFunc, sumWasm);
  });

  const cases: Array<[number[], number | number[], boolean]> = [
    [[64, 26, 26, 32], [0, 1, 2], false], // the mnist-cnn's first conv bias gradient
    [[64, 11, 11, 64], [0, 1, 2], false],
    [[64, 128], 0, false],
    [[5, 3, 4], [0, 1], true],
    [[7, 6], [-2], false],
    // Not leading axes in order, or all of them: the backend's kernel.
    [[64, 11, 11, 64], [2, 0, 1], false],
    [[4, 5, 6], [1, 2], false],
    [[4, 5, 6], [0, 2], true],
    [[4, 5, 6], [0, 1, 2], false],
  ];
  for (const [shape, axis, keepDims] of cases) {
    it(`equals the backend's kernel bit for bit: [${shape}] axis ${JSON.stringify(axis)} keepDims ${keepDims}`, () => {
      const ours = sumWith(sumWasm, shape, axis, keepDims, 3);
      const theirs = sumWith(backendSumWasm, shape, axis, keepDims, 3);
      assert.deepStrictEqual(ours.outShape, theirs.outShape);
      assertSameFloats(ours.values, theirs.values, `[${shape}] axis ${JSON.stringify(axis)}`);
    });
  }

  it('adds in float32, in order (a float64 sum would differ)', () => {
    const { values } = sumWith(sumWasm, [64, 26, 26, 32], [0, 1, 2], false, 3);
    const x = gradValues(64 * 26 * 26 * 32, 3).map((a, i) => (i % 7 === 0 ? a * 1e4 : a));
    let wide = 0;
    for (let n = 0; n < 64 * 26 * 26; n++) wide += x[n * 32];
    assert.notStrictEqual(values[0], Math.fround(wide));
  });
});

describe('wasm Identity and same-dtype Cast kernels', function () {
  before(async () => {
    await initBackend('wasm');
  });

  it('is the registered kernel, and shares the data with one more reference instead of copying it', () => {
    assert.strictEqual(tf.getKernel('Identity', 'wasm')?.kernelFunc, identityWasm);
    const backend = tf.backend() as BackendWasm;
    const buffersBefore = backend.numDataIds();
    const x = tf.tensor(
      Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i)),
      [10, 100],
    );
    const c = tf.clone(x);
    assert.strictEqual(c.dataId, x.dataId, 'the clone refers to the same data');
    assert.strictEqual(backend.refCount(x.dataId), 2);
    assert.strictEqual(backend.numDataIds() - buffersBefore, 1, 'no second buffer on the wasm heap');
    const expected = x.dataSync().slice();
    x.dispose();
    assert.deepStrictEqual(c.dataSync(), expected, 'the clone outlives the original');
    assert.strictEqual(backend.refCount(c.dataId), 1);
    c.dispose();
    assert.strictEqual(backend.numDataIds(), buffersBefore);
    // Strings are the backend's kernel's.
    tf.tidy(() => assert.deepStrictEqual(tf.clone(tf.tensor(['a', 'b'])).dataSync(), ['a', 'b']));
  });

  it('Cast to the same dtype shares the data; to another dtype it converts as before', () => {
    assert.strictEqual(tf.getKernel('Cast', 'wasm')?.kernelFunc, castWasm);
    const backend = tf.backend() as BackendWasm;
    tf.tidy(() => {
      const x = tf.tensor([1.5, -2.25, 0, -0, NaN, Infinity, 3e38]);
      const same = tf.cast(x, 'float32');
      assert.strictEqual(same.dataId, x.dataId);
      assert.strictEqual(backend.refCount(x.dataId), 2);
      assert.deepStrictEqual(Array.from(tf.cast(tf.tensor([1.5, -2.25, 0, 7.9]), 'int32').dataSync()), [1, -2, 0, 7]);
      const i = tf.tensor([7, -3], undefined, 'int32');
      assert.strictEqual(tf.cast(i, 'int32').dataId, i.dataId);
      assert.deepStrictEqual(Array.from(tf.cast(i, 'float32').dataSync()), [7, -3]);
    });
  });

  it('keeps gradients exact: a saved input is the tensor it was (tf.grad through ops that save their inputs)', () => {
    const before = tf.memory().numTensors;
    const g = tf.tidy(() => {
      const x = tf.tensor2d([
        [1, -2],
        [3, 0.5],
      ]);
      return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.relu(t), t)))(x);
    });
    // d/dx of relu(x) * x: 2x where x > 0, 0 elsewhere.
    assert.deepStrictEqual(Array.from(g.dataSync()), [2, 0, 6, 1]);
    g.dispose();
    assert.strictEqual(tf.memory().numTensors, before);
  });
});
