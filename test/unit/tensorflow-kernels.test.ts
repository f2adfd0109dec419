// Our Step and Cast kernels for the tensorflow backend against tfjs-node's own, byte for byte: checkpoints written
// before they replaced tfjs-node's must resume with the same math. The numerics-2 gradients (TensorFlow's conv and
// relu gradient kernels): what they compute, and that a numerics-2 run resumes bit for bit. Needs the native build
// (npm run setup:native), made here when absent; only where it cannot be built does the suite say so loudly and skip.
import * as assert from 'assert';
import { createHash } from 'crypto';
import * as tf from '@tensorflow/tfjs';
import { initBackend, resetBackendChoice } from '../../training/backend';
import {
  allowFusedConv,
  fusedConvAgrees,
  fusedConvStats,
  hasMklFusedConv,
  hasMklPooling,
  mklFusedConv2D,
  mklMaxPool,
  mklMaxPoolGrad,
  readInto,
  TF_RELU_GRAD,
  tfjsNodeKernel,
} from '../../training/kernels/tensorflow';
import { Trainer } from '../../training';
import { allowPooledRelu, pooledReluStats } from '../../training/layers/maxPooling2d';
import { NUMERICS_ENV_VAR } from '../../training/numerics';
import type { RunSpec } from '../../spec/types';
import { requireNative } from '../helpers/native';

const EDGE = [NaN, 0, -0, 1, -1, Infinity, -Infinity, 1e-45, -1e-45, 1.1754943508222875e-38, 3.5, -2.25, 65504];

function bits(t: tf.TensorInfo): Uint32Array {
  const v = tf.backend().readSync(t.dataId) as Float32Array;
  return new Uint32Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
}

describe('tensorflow backend kernels (Step, Cast)', function () {
  this.timeout(120_000);
  before(async function () {
    // The native build comes from `npm run setup:test`; under CI=true its absence fails here instead of skipping.
    requireNative(this, 'the tensorflow kernel tests');
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

  it("Reshape and Sum keep one shape tensor per shape: tfjs-node's outputs bit for bit, every dtype, a new shape each time", () => {
    const before = tf.memory().numTensors;
    const theirs = (name: 'Reshape' | 'Sum', x: tf.Tensor, attrs: Record<string, unknown>) =>
      tfjsNodeKernel(name)({ inputs: { x }, backend: tf.backend(), attrs: attrs as tf.NamedAttrMap }) as tf.Tensor;
    const values = Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => Math.sin(i) * 10 ** ((i % 7) - 3));
    values[3] = -0;
    const x = tf.tensor4d(values, [2, 3, 4, 5]);
    const ints = tf.tensor2d(
      Int32Array.from({ length: 12 }, (_, i) => i * 7 - 40),
      [3, 4],
      'int32',
    );
    for (let round = 0; round < 3; round++) {
      for (const shape of [[120], [6, 20], [2, 60], [-1, 5], [5, 4, 3, 2]]) {
        const ours = tf.reshape(x, shape);
        const ref = theirs('Reshape', x, { shape });
        assert.deepStrictEqual(ours.shape, ref.shape);
        assert.deepStrictEqual(bits(ours), bits(ref));
        tf.dispose([ours, ref]);
      }
      for (const [axis, keepDims] of [
        [[0, 1, 2], false],
        [3, true],
        [[1, 3], false],
        [[-1], false],
        [null, false],
      ] as Array<[number | number[] | null, boolean]>) {
        const ours = tf.sum(x, axis ?? undefined, keepDims);
        const ref = theirs('Sum', x, { axis: axis ?? [0, 1, 2, 3], keepDims });
        assert.deepStrictEqual(ours.shape, ref.shape, `axis ${axis}`);
        assert.deepStrictEqual(bits(ours), bits(ref), `axis ${axis}`);
        tf.dispose([ours, ref]);
      }
      const intSum = tf.sum(ints, 0);
      assert.strictEqual(intSum.dtype, 'int32');
      assert.deepStrictEqual(Array.from(intSum.dataSync()), [-36, -15, 6, 27]);
      tf.tidy(() => assert.deepStrictEqual(tf.reshape(ints, [12]).dataSync(), ints.dataSync()));
      intSum.dispose();
    }
    // A shape that does not fit fails in TensorFlow, as tfjs-node's own kernel does (whose shape tensor only a tidy
    // frees then), and ours leaves nothing behind.
    assert.throws(() => tf.tidy(() => theirs('Reshape', x, { shape: [7, 7] })), /Invalid TF_Status/);
    assert.throws(() => tf.reshape(x, [7, 7]), /Invalid TF_Status/);
    tf.dispose([x, ints]);
    assert.strictEqual(tf.memory().numTensors, before, 'no tensor left behind');
  });

  it("readInto copies a tensor into the caller's array through the binding's tensorDataInto: dataSync's bits", () => {
    const binding = (tf.backend() as unknown as { binding: { tensorDataInto?: unknown } }).binding;
    assert.strictEqual(
      typeof binding.tensorDataInto,
      'function',
      'setup:native builds the binding with tensorDataInto',
    );
    const before = tf.memory().numTensors;
    const x = tf.tensor(Float32Array.from(EDGE));
    const into = new Float32Array(EDGE.length + 3).subarray(2, 2 + EDGE.length); // at an offset in a larger buffer
    readInto(x, into);
    assert.deepStrictEqual(new Uint32Array(into.slice().buffer), bits(x));
    const computed = tf.tidy(() => tf.mul(x, tf.scalar(3))); // a tensor TensorFlow made, never read before
    readInto(computed, into);
    assert.deepStrictEqual(new Uint32Array(into.slice().buffer), bits(computed));
    assert.throws(() => readInto(x, new Float32Array(EDGE.length - 1)), /does not fit a Float32Array/);
    tf.dispose([x, computed]);
    assert.strictEqual(tf.memory().numTensors, before);
  });

  it('ReluGrad (numerics 2) is dy * step(x) bit for bit for every non-NaN x (±0, ±Inf, denormals, dy -0)', () => {
    const n = 4096;
    const xv = Float32Array.from({ length: n }, (_, i) =>
      i < EDGE.length ? EDGE[i] : Math.sin(i) * 10 ** ((i % 9) - 4),
    );
    // dy: -0, +0, -1.5 and Inf among ordinary values (dy * 0 is -0 for negative dy, NaN for Inf).
    const dyv = Float32Array.from({ length: n }, (_, i) =>
      i % 4 === 0 ? Math.cos(i) * 3 : [0, -0, -1.5, Infinity][i % 4],
    );
    dyv[0] = -1;
    tf.tidy(() => {
      const x = tf.tensor(xv, [64, 64]);
      const dy = tf.tensor(dyv, [64, 64]);
      const ours = tf.engine().runKernel(TF_RELU_GRAD, { dy, x }) as tf.Tensor;
      const step = tfjsNodeKernel('Step')({ inputs: { x }, backend: tf.backend(), attrs: { alpha: 0 } }) as tf.Tensor;
      const theirs = tf.mul(dy, step);
      const a = bits(ours);
      const b = bits(theirs);
      for (let i = 0; i < n; i++) if (!Number.isNaN(xv[i])) assert.strictEqual(a[i], b[i], `x ${xv[i]}, dy ${dyv[i]}`);
      // NaN input: TensorFlow's gives dy * 0 (NaN > 0 is false), tfjs's keeps the NaN; so numerics 2 only.
      assert.ok(Number.isNaN(xv[0]) && Object.is(new Float32Array(a.buffer)[0], -0));
      assert.ok(Number.isNaN(new Float32Array(b.buffer)[0]));
    });
  });

  it("oneDNN's max pooling (numerics 2): MaxPool's values (but denormals), MaxPoolGrad's gradient (bit for bit for tiling windows)", () => {
    assert.ok(hasMklPooling(), 'the tensorflow-cpu wheel has oneDNN');
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      // Relu-like: a third zeros (all-zero windows), repeated positive values (ties inside windows), -0, denormals.
      const n = 16 * 12 * 12 * 8;
      const xv = Float32Array.from({ length: n }, (_, i) =>
        i % 3 === 0 ? 0 : i % 7 === 0 ? 0.5 : i % 11 === 0 ? -0 : i % 13 === 0 ? 1e-45 : Math.abs(Math.sin(i)),
      );
      const x = tf.tensor4d(xv, [16, 12, 12, 8]);
      for (const [k, st] of [
        [2, 2],
        [3, 2],
        [3, 3],
      ] as Array<[number, number]>) {
        const y = tf.maxPool(x, k, st, 'valid');
        const dy = tf.tensor(
          Float32Array.from({ length: y.size }, (_, i) => Math.cos(i)),
          y.shape,
        );
        const { y: ours, workspace } = mklMaxPool(x, [k, k], [st, st]);
        // The same values, except that a window whose maximum is a denormal keeps it where TensorFlow's eager MaxPool
        // reads denormals as zero (one reason this is numerics 2 only).
        const [a, b] = [ours.dataSync(), y.dataSync()];
        let denormals = 0;
        for (let i = 0; i < a.length; i++) {
          if (Object.is(a[i], b[i])) continue;
          assert.ok(b[i] === 0 && a[i] > 0 && a[i] < 1.1754943508222875e-38, `value ${i}: ${a[i]} vs ${b[i]}`);
          denormals++;
        }
        assert.ok(k !== 2 || denormals > 0, 'the data has windows whose maximum is a denormal');
        const g = mklMaxPoolGrad(x, ours, dy as tf.Tensor4D, workspace, [k, k], [st, st]);
        const theirs = tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, {
          filterSize: k,
          strides: st,
          pad: 'valid',
        } as unknown as tf.NamedAttrMap) as tf.Tensor;
        if (k === st) assert.deepStrictEqual(bits(g), bits(theirs), `gradient, pool ${k} stride ${st}`);
        else {
          // Overlapping windows: the same positions get the gradient, added up in another order.
          const [ga, gb] = [g.dataSync(), theirs.dataSync()];
          for (let i = 0; i < ga.length; i++)
            assert.ok(
              Math.abs(ga[i] - gb[i]) <= 1e-6 * Math.max(1, Math.abs(gb[i])),
              `gradient ${i}: ${ga[i]} vs ${gb[i]}`,
            );
        }
      }
    });
    assert.strictEqual(tf.memory().numTensors, before);
  });

  // Whether oneDNN's fused kernel rounds exactly as Conv2D, Add and Relu depends on the CPU's kernels (seen equal on
  // AVX-512 machines for every shape here; on an AVX2 EPYC the 32 -> 64 conv differs in the last bit). What must hold
  // everywhere: the fused kernel is used exactly where it gives the same bits, the first conv of the mnist-cnn (one
  // input channel, a plain dot product of 9 terms) is one of those, and training gives the same weights either way.
  it("oneDNN's fused convolution (conv, bias, relu in one kernel) is used exactly where it equals Conv2D, Add and Relu bit for bit", () => {
    assert.ok(hasMklFusedConv(), "setup:native's binding sets list attributes and the wheel has oneDNN");
    const before = tf.memory().numTensors;
    const disagreementsBefore = fusedConvStats().disagreements;
    let differing = 0;
    tf.tidy(() => {
      for (const [n, hw, ci, co] of [
        [64, 28, 1, 32], // the mnist-cnn's first conv
        [16, 13, 32, 64],
        [3, 9, 5, 7],
      ]) {
        // Relu-like inputs (zeros, -0), ordinary values, and a bias that cancels some outputs to denormals.
        const xv = Float32Array.from({ length: n * hw * hw * ci }, (_, i) =>
          i % 5 === 0 ? 0 : i % 17 === 0 ? -0 : Math.sin(i) * 2,
        );
        const x = tf.tensor4d(xv, [n, hw, hw, ci]);
        const w = tf.tensor4d(
          Float32Array.from({ length: 9 * ci * co }, (_, i) => Math.cos(i * 1.3) / 3),
          [3, 3, ci, co],
        );
        const bias = tf.tensor1d(Float32Array.from({ length: co }, (_, i) => (i % 3 === 0 ? 0 : Math.sin(i))));
        const z = tf.add(tf.conv2d(x, w, 1, 'valid'), bias);
        for (const relu of [true, false]) {
          const fused = bits(mklFusedConv2D(x, w, bias, relu));
          const separate = bits(relu ? tf.relu(z) : z);
          const same = fused.length === separate.length && fused.every((v, i) => v === separate[i]);
          const where = `[${n},${hw},${hw},${ci}] -> ${co}, relu ${relu}`;
          if (ci === 1) assert.deepStrictEqual(fused, separate, where);
          if (!same) differing++;
          assert.strictEqual(fusedConvAgrees(x, w, bias, relu), same, `${where}: used only where the bits are equal`);
        }
      }
      // Where conv + bias is a denormal: both flush it to zero (TensorFlow's kernels run with denormals off).
      const x = tf.tensor4d([1e-19, 1e-19, 1e-19, 2e-19], [1, 2, 2, 1]);
      const w = tf.tensor4d([1.5e-19], [1, 1, 1, 1]);
      const bias = tf.tensor1d([-1.4e-38]);
      const sep = tf.relu(tf.add(tf.conv2d(x, w, 1, 'valid'), bias));
      assert.deepStrictEqual(Array.from(sep.dataSync()), [0, 0, 0, 1.5999997839691475e-38]);
      assert.deepStrictEqual(bits(mklFusedConv2D(x, w, bias, true)), bits(sep));
    });
    assert.strictEqual(tf.memory().numTensors, before);
    assert.strictEqual(fusedConvStats().disagreements - disagreementsBefore, differing, 'each difference is counted');
  });

  describe('mnist-cnn under numerics 2', () => {
    const spec = {
      model: 'mnist-cnn',
      dataset: { name: 'mnist', trainLimit: 256, testLimit: 64 },
      epochs: 2,
      batchSize: 32,
      seed: 11,
      dropout: 0.25,
      augment: { shift: 2 },
      optimizer: { name: 'adam', learningRate: 1e-3 },
      chunkSteps: 10,
      chunkSeconds: 60,
      checkpoint: { storage: 'file://unused' },
    } as RunSpec;

    async function run(numerics: 1 | 2, breakAt: number | null): Promise<string> {
      let t = await Trainer.create(spec, { numerics });
      try {
        if (breakAt !== null) {
          await t.train({ maxSteps: breakAt });
          const snap = t.snapshot();
          assert.strictEqual(snap.state.numerics, numerics);
          t.dispose();
          t = await Trainer.fromSnapshot(spec, snap, { numerics });
        }
        while (!t.done) await t.train({ maxSteps: 100 });
        return t.weightsSha256();
      } finally {
        t.dispose();
      }
    }

    it('runs its convolutions fused, with the same weights, gradients included, as the three separate ops', async () => {
      const trained = async (fused: boolean, s: RunSpec = spec): Promise<{ hash: string; calls: number }> => {
        allowFusedConv(fused);
        try {
          const before = fusedConvStats().calls;
          const t = await Trainer.create(s);
          try {
            assert.strictEqual(t.info.numerics, 2);
            while (!t.done) await t.train({ maxSteps: 100 });
            return { hash: t.weightsSha256(), calls: fusedConvStats().calls - before };
          } finally {
            t.dispose();
          }
        } finally {
          allowFusedConv(true);
        }
      };
      const fused = await trained(true);
      const separate = await trained(false);
      // 2 epochs of 8 steps; the first conv runs fused at every step on every CPU (the second where its bits agree).
      assert.ok(fused.calls >= 16, `fused convolutions run: ${fused.calls}`);
      assert.strictEqual(separate.calls, 0);
      assert.strictEqual(fused.hash, separate.hash);
      // A conv with bias and no activation (then batch norm and relu), after a first layer: bias-only fusion, with the
      // input gradient.
      const linear = {
        ...spec,
        model: {
          layers: [
            { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' },
            { type: 'conv2d', filters: 6, kernelSize: 3 },
            { type: 'batchNormalization' },
            { type: 'activation', activation: 'relu' },
            { type: 'maxPooling2d', poolSize: 2 },
            { type: 'flatten' },
            { type: 'dense', units: 10, activation: 'softmax' },
          ],
        },
      } as unknown as RunSpec;
      const fusedLinear = await trained(true, linear);
      const separateLinear = await trained(false, linear);
      // Fused where this CPU's kernels agree (all of these convs on AVX-512, none of them on an AVX2 EPYC): the
      // weights are the separate ops' either way.
      assert.strictEqual(fusedLinear.hash, separateLinear.hash);
      assert.notStrictEqual(fusedLinear.hash, fused.hash);
    });

    it("applies a relu's gradient mask on the pooled gradient where a max pooling alone reads it: the same weights and moments", async () => {
      const trained = async (on: boolean, s: RunSpec = spec): Promise<{ state: string; calls: number }> => {
        allowPooledRelu(on);
        try {
          const before = pooledReluStats();
          const t = await Trainer.create(s);
          try {
            while (!t.done) await t.train({ maxSteps: 100 });
            const h = createHash('sha256');
            for (const x of t.snapshot().tensors) h.update(x.name).update(x.data);
            const after = pooledReluStats();
            assert.strictEqual(after.disagreements, before.disagreements, 'no shape found to differ');
            return { state: h.digest('hex'), calls: after.calls - before.calls };
          } finally {
            t.dispose();
          }
        } finally {
          allowPooledRelu(true);
        }
      };
      const masked = await trained(true);
      const after = await trained(false);
      // Both of the mnist-cnn's conv+relu+pool blocks, at each of 16 steps (where the conv runs fused).
      assert.ok(masked.calls >= 16, `pooled gradients masked: ${masked.calls}`);
      assert.strictEqual(after.calls, 0);
      assert.strictEqual(masked.state, after.state, 'weights and Adam moments, every bit');
      // A conv whose output a pooling and a skip connection both read keeps its own mask (the skip's gradient needs it).
      const branched = {
        ...spec,
        model: {
          layers: [
            { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu', name: 'c' },
            { type: 'maxPooling2d', poolSize: 2, inputs: ['c'], name: 'p' },
            { type: 'flatten', inputs: ['p'], name: 'fp' },
            { type: 'flatten', inputs: ['c'], name: 'fc' },
            { type: 'concatenate', inputs: ['fp', 'fc'], name: 'both' },
            { type: 'dense', units: 10, activation: 'softmax', inputs: ['both'] },
          ],
        },
      } as unknown as RunSpec;
      const branchedMasked = await trained(true, branched);
      const branchedAfter = await trained(false, branched);
      assert.strictEqual(branchedMasked.calls, 0, 'the conv is read by two layers: no mask handed over');
      assert.strictEqual(branchedMasked.state, branchedAfter.state);
    });

    it('is the tensorflow default, resumes bit for bit (mid-epoch and at the epoch end), and is other math than 1', async () => {
      const t = await Trainer.create(spec);
      assert.strictEqual(t.info.numerics, 2);
      // The pooling workspaces (kept out of the tape) are all freed: no tensor more per step.
      await t.train({ maxSteps: 1 });
      const tensors = tf.memory().numTensors;
      await t.train({ maxSteps: 3 });
      assert.strictEqual(tf.memory().numTensors, tensors);
      t.dispose();
      const whole = await run(2, null);
      assert.strictEqual(await run(2, 5), whole);
      assert.strictEqual(await run(2, 8), whole);
      const v1 = await run(1, null);
      assert.notStrictEqual(v1, whole, 'numerics 1 and 2 give different weights: hence the guard');
      assert.strictEqual(await run(1, 5), v1);
      // A numerics-1 checkpoint (a run started before numerics 2 was the default) continues with numerics 1 on this
      // backend, exactly; only an explicit DURABLE_TRAIN_NUMERICS=2 makes it a change, refused unless accepted.
      const t1 = await Trainer.create(spec, { numerics: 1 });
      await t1.train({ maxSteps: 5 });
      const snap = t1.snapshot();
      t1.dispose();
      const resumed = await Trainer.fromSnapshot(spec, snap);
      assert.strictEqual(resumed.info.numerics, 1);
      while (!resumed.done) await resumed.train({ maxSteps: 100 });
      assert.strictEqual(resumed.weightsSha256(), v1, 'the old run goes on with its own math');
      resumed.dispose();
      process.env[NUMERICS_ENV_VAR] = '2';
      try {
        await assert.rejects(Trainer.fromSnapshot(spec, snap), /numerics 1 .*numerics 2/);
      } finally {
        delete process.env[NUMERICS_ENV_VAR];
      }
    });
  });
});
