// Our Step and Cast kernels for the tensorflow backend against tfjs-node's own, byte for byte: checkpoints written
// before they replaced tfjs-node's must resume with the same math. Needs the native build (npm run setup:native),
// made here when absent; only where it cannot be built does the suite say so loudly and skip.
import * as assert from 'assert';
import * as tf from '@tensorflow/tfjs';
import { initBackend, resetBackendChoice } from '../../training/backend';
import { tfjsNodeKernel } from '../../training/kernels/tensorflow';
import { ensureNativeBuild, loudNativeSkip } from '../helpers/native';

const EDGE = [NaN, 0, -0, 1, -1, Infinity, -Infinity, 1e-45, -1e-45, 1.1754943508222875e-38, 3.5, -2.25, 65504];

function bits(t: tf.TensorInfo): Uint32Array {
  const v = tf.backend().readSync(t.dataId) as Float32Array;
  return new Uint32Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
}

describe('tensorflow backend kernels (Step, Cast)', function () {
  this.timeout(120_000);
  before(async function () {
    // The native build is made here when absent (once: the native integration test then finds it).
    this.timeout(1_800_000);
    const cannot = ensureNativeBuild();
    if (cannot) {
      console.error(loudNativeSkip('the tensorflow kernel tests', cannot));
      this.skip();
    }
    await initBackend('tensorflow');
  });
  after(async () => {
    resetBackendChoice();
    await initBackend('wasm'); // the suite's backend
  });

  it("Step equals tfjs-node's kernel bit for bit (NaN, ±0, ±Inf, denormals), and with alpha left to it", () => {
    const values = new Float32Array(4096);
    for (let i = 0; i < values.length; i++) values[i] = i < EDGE.length ? EDGE[i] : Math.sin(i) * 10 ** ((i % 9) - 4);
    const before = tf.memory().numTensors;
    // (tfjs-node's Step fails on int32 itself: TensorFlow's IsNan takes floats only.)
    for (const alpha of [0, 0.3]) {
      tf.tidy(() => {
        const x = tf.tensor(values, [64, 64]);
        const ours = tf.step(x, alpha);
        // tfjs-node's kernels return tensors the engine tracks: the tidy disposes them.
        const theirs = tfjsNodeKernel('Step')({ inputs: { x }, backend: tf.backend(), attrs: { alpha } }) as tf.Tensor;
        assert.deepStrictEqual(bits(ours), bits(theirs), `alpha ${alpha}`);
      });
    }
    assert.strictEqual(tf.memory().numTensors, before);
  });

  it('relu gradients are unchanged: dy * step(x) as before, through tf.grad', () => {
    const x = tf.tensor(Float32Array.from({ length: 1024 }, (_, i) => (i < EDGE.length ? EDGE[i] : Math.cos(i))));
    const dy = tf.tensor(Float32Array.from({ length: 1024 }, (_, i) => (i % 5 === 0 ? -0 : Math.sin(i * 7))));
    const g = tf.grad((t: tf.Tensor) => tf.relu(t))(x, dy);
    const theirs = tf.tidy(() =>
      tf.mul(dy, tfjsNodeKernel('Step')({ inputs: { x }, backend: tf.backend(), attrs: { alpha: 0 } }) as tf.Tensor),
    );
    assert.deepStrictEqual(bits(g), bits(theirs));
    tf.dispose([x, dy, g, theirs]);
  });

  it("Cast to the same dtype shares the data; other casts are tfjs-node's", () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor(Float32Array.from(EDGE));
    const same = tf.cast(x, 'float32');
    assert.strictEqual(same.dataId, x.dataId);
    x.dispose();
    assert.deepStrictEqual(bits(same), new Uint32Array(Float32Array.from(EDGE).buffer));
    same.dispose();
    const ints = tf.tensor([1.5, -2.5, 3.99], [3], 'float32');
    const cast = tf.cast(ints, 'int32');
    const theirs = tfjsNodeKernel('Cast')({
      inputs: { x: ints },
      backend: tf.backend(),
      attrs: { dtype: 'int32' },
    }) as tf.Tensor;
    assert.strictEqual(cast.dtype, 'int32');
    assert.deepStrictEqual(Array.from(cast.dataSync()), Array.from(theirs.dataSync()));
    tf.dispose([ints, cast, theirs]);
    assert.strictEqual(tf.memory().numTensors, before);
  });
});
