import * as assert from 'assert';
import * as tf from '@tensorflow/tfjs';
import type { RunSpec } from '../../spec/types';
import { loadDataset } from '../../training/datasets';
import { buildModel, conv2dFilterGrad, conv2dInputGrad } from '../../training/models';
import { Prng } from '../../training/prng';
import { Trainer, type TrainerSnapshot } from '../../training';

const spec = (over: Partial<RunSpec> = {}): RunSpec => ({
  model: 'mnist-cnn',
  dataset: { name: 'mnist', trainLimit: 96, testLimit: 50 },
  epochs: 2,
  batchSize: 32,
  chunkSteps: 10,
  chunkSeconds: 60,
  seed: 1,
  optimizer: { name: 'adam', learningRate: 1e-3 },
  augment: { shift: 1 },
  dropout: 0.25,
  checkpoint: { storage: 'file://unused' },
  ...over,
});

describe('training/datasets', () => {
  it('loads MNIST from the IDX files, honours limits, and fingerprints what it uses', () => {
    const full = loadDataset({ name: 'mnist' });
    assert.strictEqual(full.train.n, 60000);
    assert.strictEqual(full.test.n, 10000);
    assert.strictEqual(full.train.images.length, 60000 * 784);
    // The first MNIST training labels are 5, 0, 4, 1, 9.
    assert.deepStrictEqual(Array.from(full.train.labels.subarray(0, 5)), [5, 0, 4, 1, 9]);
    let max = 0;
    for (let i = 0; i < 784 * 10; i++) max = Math.max(max, full.train.images[i]);
    assert.strictEqual(max, 1);
    const a = loadDataset({ name: 'mnist', trainLimit: 1000, testLimit: 100 });
    const b = loadDataset({ name: 'mnist', trainLimit: 1001, testLimit: 100 });
    const c = loadDataset({ name: 'mnist', trainLimit: 1000, testLimit: 101 });
    assert.strictEqual(a.train.n, 1000);
    assert.strictEqual(a.test.labels.length, 100);
    assert.strictEqual(new Set([full.fingerprint, a.fingerprint, b.fingerprint, c.fingerprint]).size, 4);
    assert.strictEqual(loadDataset({ name: 'mnist', trainLimit: 1000, testLimit: 100 }).fingerprint, a.fingerprint);
  });

  it('rejects fashion-mnist and bad limits with clear errors', () => {
    // Not a DatasetName any more (the spec refuses it); the loader still names it when called around the spec.
    assert.throws(() => loadDataset({ name: 'fashion-mnist' } as never), /fashion-mnist is not available/);
    assert.throws(() => loadDataset({ name: 'mnist', trainLimit: 0 }), /trainLimit/);
    assert.throws(() => loadDataset({ name: 'mnist', testLimit: 10001 }), /testLimit/);
  });
});

describe('training/models and Trainer on cpu', function () {
  this.timeout(600_000);
  before(async () => {
    assert.ok(await tf.setBackend('cpu'));
  });

  it('conv gradients match tfjs native gradients', () => {
    const rng = Prng.fromSeed(5);
    const rand = (shape: [number, number, number, number]) =>
      tf.tensor4d(
        Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
        shape,
      );
    tf.tidy(() => {
      const x = rand([2, 7, 6, 3]);
      const w = rand([3, 3, 3, 4]);
      const dy = rand([2, 5, 4, 4]);
      const f = (xx: tf.Tensor4D, ww: tf.Tensor4D) => tf.sum(tf.mul(tf.conv2d(xx, ww, 1, 'valid'), dy));
      const [gx, gw] = tf.grads(f as (...a: tf.Tensor[]) => tf.Tensor)([x, w]);
      const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
      assert.ok(maxDiff(conv2dFilterGrad(x, dy), gw) < 1e-4);
      assert.ok(maxDiff(conv2dInputGrad(dy, w), gx) < 1e-4);
    });
  });

  it('our forward pass computes what the exported tf.layers model predicts', async () => {
    const t = await Trainer.create(spec());
    try {
      await t.train({ maxSteps: 2 });
      const data = loadDataset(spec().dataset);
      tf.tidy(() => {
        const x = tf.tensor4d(data.test.images.subarray(0, 8 * 784), [8, 28, 28, 1]);
        const ours = tf.softmax((t as unknown as { net: ReturnType<typeof buildModel> }).net.forward(x));
        const theirs = t.layersModel.predict(x) as tf.Tensor;
        assert.ok(tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0] < 1e-5);
      });
    } finally {
      t.dispose();
    }
  });

  it('uses stable tensor names: a second model in the same process has the same names and init', async () => {
    const t1 = await Trainer.create(spec());
    const t2 = await Trainer.create(spec());
    try {
      const names = (s: TrainerSnapshot) => s.tensors.map((x) => `${x.name}:${x.dtype}:${JSON.stringify(x.shape)}`);
      const n1 = names(t1.snapshot());
      assert.deepStrictEqual(names(t2.snapshot()), n1);
      assert.deepStrictEqual(n1, [
        'model/conv1/bias:float32:[32]',
        'model/conv1/kernel:float32:[3,3,1,32]',
        'model/conv2/bias:float32:[64]',
        'model/conv2/kernel:float32:[3,3,32,64]',
        'model/dense1/bias:float32:[128]',
        'model/dense1/kernel:float32:[1600,128]',
        'model/dense2/bias:float32:[10]',
        'model/dense2/kernel:float32:[128,10]',
        'opt/adam/m/model/conv1/kernel:float32:[3,3,1,32]',
        'opt/adam/m/model/conv1/bias:float32:[32]',
        'opt/adam/m/model/conv2/kernel:float32:[3,3,32,64]',
        'opt/adam/m/model/conv2/bias:float32:[64]',
        'opt/adam/m/model/dense1/kernel:float32:[1600,128]',
        'opt/adam/m/model/dense1/bias:float32:[128]',
        'opt/adam/m/model/dense2/kernel:float32:[128,10]',
        'opt/adam/m/model/dense2/bias:float32:[10]',
        'opt/adam/v/model/conv1/kernel:float32:[3,3,1,32]',
        'opt/adam/v/model/conv1/bias:float32:[32]',
        'opt/adam/v/model/conv2/kernel:float32:[3,3,32,64]',
        'opt/adam/v/model/conv2/bias:float32:[64]',
        'opt/adam/v/model/dense1/kernel:float32:[1600,128]',
        'opt/adam/v/model/dense1/bias:float32:[128]',
        'opt/adam/v/model/dense2/kernel:float32:[128,10]',
        'opt/adam/v/model/dense2/bias:float32:[10]',
        'opt/adam/iterations:int32:[]',
        'data/order:int32:[96]',
      ]);
      // tfjs itself uniquified the second model's variable names; ours did not change.
      const tfNames = (t: Trainer) => t.layersModel.weights.map((w) => w.name);
      assert.notDeepStrictEqual(tfNames(t2), tfNames(t1));
      assert.strictEqual(t1.weightsSha256(), t2.weightsSha256());
      assert.strictEqual(t1.info.modelFingerprint, t2.info.modelFingerprint);
      assert.strictEqual(t1.info.parameterCount, 225034);
      assert.strictEqual(t1.info.backend, 'cpu');
    } finally {
      t1.dispose();
      t2.dispose();
    }
    const mlp = await Trainer.create(spec({ model: 'mnist-mlp', optimizer: { name: 'momentum', learningRate: 0.1 } }));
    try {
      assert.deepStrictEqual(
        mlp.snapshot().tensors.map((x) => x.name),
        [
          'model/dense1/bias',
          'model/dense1/kernel',
          'model/dense2/bias',
          'model/dense2/kernel',
          'opt/momentum/velocity/model/dense1/kernel',
          'opt/momentum/velocity/model/dense1/bias',
          'opt/momentum/velocity/model/dense2/kernel',
          'opt/momentum/velocity/model/dense2/bias',
          'opt/momentum/iterations',
          'data/order',
        ],
      );
      assert.notStrictEqual(mlp.info.modelFingerprint, buildFingerprint('mnist-cnn'));
    } finally {
      mlp.dispose();
    }
  });

  it('does not leak tensors across steps, epochs, snapshots and create/restore/dispose cycles', async () => {
    const cycle = async () => {
      const small = spec({ dataset: { name: 'mnist', trainLimit: 40, testLimit: 20 }, batchSize: 16 }); // 3 steps per epoch
      const t = await Trainer.create(small);
      const counts: number[] = [];
      await t.train({ maxSteps: 4, onStep: () => void counts.push(tf.memory().numTensors) });
      const snap = t.snapshot();
      t.dispose();
      const r = await Trainer.fromSnapshot(small, snap);
      await r.train({ maxSteps: 3, onStep: () => void counts.push(tf.memory().numTensors) });
      r.evaluate();
      counts.push(tf.memory().numTensors);
      r.dispose();
      return counts;
    };
    await cycle(); // warm-up: one-time caches, if any
    const before = tf.memory().numTensors;
    const counts = await cycle();
    assert.strictEqual(new Set(counts).size, 1, `tensor counts during training: ${counts}`);
    assert.strictEqual(tf.memory().numTensors, before);
    assert.strictEqual(Object.keys(tf.engine().state.registeredVariables).length, 0);
  });

  it('fromSnapshot names a missing, mismatched or unexpected tensor; snapshots are deep copies', async () => {
    const s = spec();
    const t = await Trainer.create(s);
    let snap: TrainerSnapshot;
    try {
      await t.train({ maxSteps: 1 });
      snap = t.snapshot();
      const kernelBefore = Buffer.from(snap.tensors[1].data).toString('hex');
      await t.train({ maxSteps: 1 });
      assert.strictEqual(Buffer.from(snap.tensors[1].data).toString('hex'), kernelBefore);
      assert.notStrictEqual(Buffer.from(t.snapshot().tensors[1].data).toString('hex'), kernelBefore);
      snap.state.rng.state[0] = 0; // mutating a snapshot must not touch the trainer
      assert.notStrictEqual(t.state.rng.state[0], 0);
    } finally {
      t.dispose();
    }
    const before = tf.memory().numTensors;
    const without = (name: string) => ({ ...snap, tensors: snap.tensors.filter((x) => x.name !== name) });
    await assert.rejects(
      Trainer.fromSnapshot(s, without('opt/adam/v/model/conv2/kernel')),
      /missing tensor opt\/adam\/v\/model\/conv2\/kernel/,
    );
    await assert.rejects(Trainer.fromSnapshot(s, without('data/order')), /missing tensor data\/order/);
    const reshaped = {
      ...snap,
      tensors: snap.tensors.map((x) => (x.name === 'model/dense1/bias' ? { ...x, shape: [64, 2] } : x)),
    };
    await assert.rejects(
      Trainer.fromSnapshot(s, reshaped),
      /model\/dense1\/bias is float32 \[64,2\], expected float32 \[128\]/,
    );
    const extra = {
      ...snap,
      tensors: [
        ...snap.tensors,
        { name: 'opt/sgd/iterations', dtype: 'int32' as const, shape: [], data: new Uint8Array(4) },
      ],
    };
    await assert.rejects(Trainer.fromSnapshot(s, extra), /unexpected tensor\(s\) opt\/sgd\/iterations/);
    await assert.rejects(
      Trainer.fromSnapshot({ ...s, optimizer: { name: 'sgd', learningRate: 0.1 } }, snap),
      /missing tensor opt\/sgd\/iterations/,
    );
    await assert.rejects(Trainer.fromSnapshot({ ...s, batchSize: 16 }, snap), /stepsPerEpoch/);
    assert.strictEqual(tf.memory().numTensors, before, 'failed restores must free what they built');
  });

  it('yields to the event loop between steps, awaits onStep, honours shouldStop', async () => {
    const t = await Trainer.create(spec({ model: 'mnist-mlp', dropout: 0 }));
    try {
      // A macrotask that re-queues itself: it only runs when train() gives the event loop a turn. onStep itself is
      // synchronous, so any turn between steps is the trainer's own yield.
      let ticks = 0;
      let ticking = true;
      const tick = () => {
        ticks++;
        if (ticking) setImmediate(tick);
      };
      setImmediate(tick);
      const seen: number[] = [];
      const ticksAtStep: number[] = [];
      let awaited = 0;
      const r = await t.train({
        maxSteps: 100,
        onStep: (p) => {
          seen.push(p.step);
          ticksAtStep.push(ticks);
          // onStep's promise is awaited before the next step starts.
          return new Promise<void>((res) => queueMicrotask(() => (awaited++, res())));
        },
        shouldStop: () => seen.length >= 4,
      });
      ticking = false;
      assert.strictEqual(awaited, 4);
      for (let i = 1; i < ticksAtStep.length; i++) {
        assert.ok(ticksAtStep[i] > ticksAtStep[i - 1], `no event loop turn between steps ${i} and ${i + 1}`);
      }
      assert.deepStrictEqual(seen, [1, 2, 3, 4]);
      assert.strictEqual(r.stepsRun, 4);
      assert.strictEqual(r.done, false);
      assert.strictEqual(r.evals.length, 1); // 96 / 32 = 3 steps per epoch: the epoch end was crossed
      assert.strictEqual(r.state.epoch, 1);
      assert.strictEqual(r.state.batchInEpoch, 1);
      const evalProgress: string[] = [];
      const rest = await t.train({
        maxSteps: 100,
        onEvalProgress: (p) => {
          evalProgress.push(`${p.evaluated}/${p.total}`);
          assert.throws(() => t.snapshot(), /during a step/);
        },
      });
      assert.deepStrictEqual(evalProgress, ['50/50']);
      assert.strictEqual(rest.stepsRun, 2);
      assert.ok(rest.done && t.done);
      assert.strictEqual((await t.train({ maxSteps: 5 })).stepsRun, 0);
      const e1 = t.evaluate();
      assert.deepStrictEqual(t.evaluate(), e1);
      assert.deepStrictEqual(
        t.state.metrics.evals.map((e) => [e.epoch, e.step]),
        [
          [0, 3],
          [1, 6],
        ],
      );
    } finally {
      t.dispose();
    }
  });

  it('mnist-mlp on 10000 examples reaches > 0.85 test accuracy after one epoch', async () => {
    const t = await Trainer.create(
      spec({
        model: 'mnist-mlp',
        dataset: { name: 'mnist', trainLimit: 10000 },
        epochs: 1,
        batchSize: 32,
        dropout: 0,
        augment: { shift: 0 },
      }),
    );
    try {
      const r = await t.train({ maxSteps: 1_000_000 });
      assert.ok(r.done);
      assert.strictEqual(r.evals.length, 1);
      assert.ok((r.evals[0].accuracy ?? 0) > 0.85, `accuracy ${r.evals[0].accuracy}`);
      assert.deepStrictEqual(r.state.metrics.best, { loss: r.evals[0].loss, accuracy: r.evals[0].accuracy });
    } finally {
      t.dispose();
    }
  });
});

function buildFingerprint(name: 'mnist-cnn' | 'mnist-mlp'): string {
  const net = buildModel(name, 0);
  try {
    return net.fingerprint;
  } finally {
    net.dispose();
  }
}
