// A model that cannot fit is refused before anything is allocated (the pure check `start` and the worker share), and a
// failure that can leave the backend unusable is named for what it is, never blamed on a checkpoint; errors that fail
// the same way on every attempt are not retried (the catalogue in activities/failures.ts).
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { ApplicationFailure } from '@temporalio/common';
import { classifyFailure, FailureKinds, isBackendPoisoning } from '../../activities/failures';
import { restoreTrainer } from '../../activities/chunk/restore';
import { snapshotOf } from '../../activities/commit';
import { FailureTypes } from '../../activities/types';
import type { Manifest } from '../../checkpoint';
import { validateSpec, type RunSpec } from '../../spec';
import { checkModelFit } from '../../spec/model-fit';
import { Trainer } from '../../training';
import { initBackend } from '../../training/backend';
import { maxModelBytes } from '../../training/model-limit';

const GiB = 2 ** 30;
/** WebAssembly.RuntimeError, the error a wasm trap throws (not in the compiler's lib). */
const WasmTrap = (globalThis as unknown as { WebAssembly: { RuntimeError: ErrorConstructor } }).WebAssembly
  .RuntimeError;
const mnist = (model: unknown, extra: Record<string, unknown> = {}): RunSpec =>
  validateSpec({
    model,
    dataset: { name: 'mnist', trainLimit: 100, testLimit: 20 },
    epochs: 1,
    batchSize: 20,
    chunkSteps: 2,
    seed: 1,
    optimizer: { name: 'adam', learningRate: 0.001 },
    checkpoint: { storage: 'file:///tmp/unused' },
    ...extra,
  });

describe('model fit: every layer checked, memory estimated, before anything is allocated', function () {
  this.timeout(60_000);

  it('a pool window larger than its input is refused naming the layer', () => {
    const spec = mnist({
      layers: [
        { type: 'conv2d', filters: 4, kernelSize: 3 },
        { type: 'maxPooling2d', poolSize: 13 },
        { type: 'maxPooling2d', name: 'tooBig', poolSize: 20 },
        { type: 'flatten' },
        { type: 'dense', units: 10 },
      ],
    });
    assert.throws(
      () => checkModelFit(spec, [28, 28, 1], GiB),
      /model\.layers\[2\] \(tooBig, maxPooling2d\) on input \[2, 2, 4\]: its window \(20\) is larger than its input \(2\)/,
    );
  });

  it('a dense layer of 1,000,000 units is refused naming the layer and the memory it needs', () => {
    const spec = mnist({
      layers: [{ type: 'flatten' }, { type: 'dense', units: 1_000_000 }, { type: 'dense', units: 10 }],
    });
    assert.throws(
      () => checkModelFit(spec, [28, 28, 1], 2 * GiB),
      (err: Error) => {
        assert.equal(err.name, 'ModelFitError');
        assert.match(err.message, /more than this worker's limit of 2048\.0 MiB \(DURABLE_TRAIN_MAX_MODEL_BYTES\)/);
        assert.match(err.message, /the largest layer is model\.layers\[1\] \(dense2, 785000000 weights/);
        return true;
      },
    );
  });

  it('the built-in models fit, with their parameter counts; reshape sizes must match', () => {
    const cnn = checkModelFit(mnist('mnist-cnn'), [28, 28, 1], GiB)!;
    assert.deepEqual(cnn.layers[cnn.layers.length - 1].outputShape, [10]);
    assert.equal(cnn.params, 320 + 18496 + 1600 * 128 + 128 + 1290);
    const mlp = checkModelFit(mnist('mnist-mlp'), [28, 28, 1], GiB)!;
    assert.equal(mlp.params, 784 * 128 + 128 + 1290);
    assert.ok(mlp.bytes.optimizer === mlp.bytes.weights * 3, 'adam: gradient and two moments');
    assert.throws(
      () =>
        checkModelFit(
          mnist({ layers: [{ type: 'reshape', targetShape: [27, 27] }, { type: 'flatten' }] }),
          [28, 28, 1],
          GiB,
        ),
      /model\.layers\[0\] \(reshape1, reshape\).*targetShape \[27, 27\] holds 729 values, its input 784/,
    );
  });

  it('the worker refuses the same models before building them (Trainer.create)', async () => {
    const prev = process.env.DURABLE_TRAIN_MAX_MODEL_BYTES;
    process.env.DURABLE_TRAIN_MAX_MODEL_BYTES = String(64 * 2 ** 20);
    try {
      const before = tf.memory().numBytes;
      await assert.rejects(
        Trainer.create(
          mnist({ layers: [{ type: 'flatten' }, { type: 'dense', units: 1_000_000 }, { type: 'dense', units: 10 }] }),
        ),
        /ModelFitError|more than this worker's limit of 64\.0 MiB/,
      );
      assert.equal(tf.memory().numBytes, before, 'nothing allocated');
      assert.equal(maxModelBytes('wasm'), 64 * 2 ** 20);
    } finally {
      if (prev === undefined) delete process.env.DURABLE_TRAIN_MAX_MODEL_BYTES;
      else process.env.DURABLE_TRAIN_MAX_MODEL_BYTES = prev;
    }
    assert.ok(maxModelBytes('wasm', {}) <= 2 * GiB);
    assert.throws(() => maxModelBytes('cpu', { DURABLE_TRAIN_MAX_MODEL_BYTES: 'lots' }), /not a positive number/);
  });
});

describe('failure catalogue: backend failures named, deterministic errors not retried', function () {
  this.timeout(60_000);

  it('a wasm RuntimeError or an allocation failure is a backend failure, retried elsewhere', () => {
    const trap = new WasmTrap('memory access out of bounds');
    assert.ok(isBackendPoisoning(trap));
    assert.ok(isBackendPoisoning(new Error('trainer: unusable after a failed step (memory access out of bounds)')));
    assert.ok(isBackendPoisoning(new RangeError('Array buffer allocation failed')));
    assert.ok(!isBackendPoisoning(new Error('ECONNREFUSED')));
    const f = classifyFailure(trap, 'run r') as ApplicationFailure;
    assert.equal(f.type, FailureKinds.BackendPoisoned);
    assert.equal(f.nonRetryable, false);
    assert.match(f.message, /run r: the tensor backend failed \(RuntimeError: memory access out of bounds\)/);
  });

  it('a reshape whose sizes do not match, a NaN and a config error are non-retryable; a network error is not', () => {
    let reshape: unknown;
    try {
      tf.tidy(() => tf.zeros([2, 3]).reshape([4, 2]));
    } catch (err) {
      reshape = err;
    }
    const r = classifyFailure(reshape, 'run r') as ApplicationFailure;
    assert.ok(r instanceof ApplicationFailure, String(reshape));
    assert.equal(r.type, FailureKinds.Deterministic);
    assert.equal(r.nonRetryable, true);
    const cfg = Object.assign(new Error('model: bad'), { name: 'ModelFitError' });
    assert.equal((classifyFailure(cfg, 'run r') as ApplicationFailure).type, FailureTypes.InvalidSpec);
    const nan = Object.assign(new Error('the training loss is NaN at step 3'), { name: 'NonFiniteError' });
    assert.equal((classifyFailure(nan, 'run r') as ApplicationFailure).type, FailureKinds.NonFinite);
    const net = new Error('ECONNRESET');
    assert.equal(classifyFailure(net, 'run r'), net);
  });

  it('a backend that fails while restoring is not blamed on the checkpoint', async () => {
    const spec = mnist('mnist-mlp');
    const backend = await initBackend();
    const trainer = await Trainer.create(spec);
    const snap = trainer.snapshot();
    trainer.dispose();
    const manifest = {
      id: 'c1',
      backend: { name: backend.name, version: backend.version },
      blobs: snap.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
      state: snap.state,
      fingerprints: {},
    } as unknown as Manifest;
    const blobs = new Map(snap.tensors.map((t) => [t.name, t.data]));
    assert.equal(snapshotOf(manifest, blobs).tensors.length, snap.tensors.length);
    const real = Trainer.fromSnapshot;
    Trainer.fromSnapshot = () => Promise.reject(new WasmTrap('memory access out of bounds'));
    try {
      await assert.rejects(restoreTrainer(spec, backend, manifest, blobs), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, FailureKinds.BackendPoisoned);
        assert.doesNotMatch(err.message, /cannot restore checkpoint/);
        return true;
      });
    } finally {
      Trainer.fromSnapshot = real;
    }
  });
});

describe('resume guard: a replicas change is named as such, with the flag that allows it', function () {
  this.timeout(60_000);
  it('a checkpoint of 2 replicas resumed by a spec of 1 names distributed.replicas, not only the steps per epoch', async () => {
    const spec = mnist('mnist-mlp');
    const backend = await initBackend();
    const trainer = await Trainer.create(spec);
    const snap = trainer.snapshot();
    trainer.dispose();
    const state = { ...snap.state, stepsPerEpoch: 3, distributed: { replicas: 2 } };
    const manifest = {
      id: 'c2',
      backend: { name: backend.name, version: backend.version },
      blobs: snap.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
      state,
      fingerprints: {},
    } as unknown as Manifest;
    const blobs = new Map(snap.tensors.map((t) => [t.name, t.data]));
    await assert.rejects(restoreTrainer(spec, backend, manifest, blobs), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, FailureTypes.ResumeGuard);
      assert.match(err.message, /was trained by 2 replicas, the spec has 1 replica \(distributed\.replicas\)/);
      assert.match(err.message, /set resume\.allowTopologyChange to continue with 1$/);
      return true;
    });
  });
});
