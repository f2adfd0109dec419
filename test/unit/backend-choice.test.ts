// A new run's backend by the work of its step (training/backend-choice.ts), a process switching backends per run
// (useBackend), and which workers choose (cli/worker.ts chooseBackends).
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { chooseBackends } from '../../cli/worker';
import { backendIsAuto, initBackend, useBackend } from '../../training/backend';
import { backendForNewRun, SMALL_STEP_WORK, stepWork } from '../../training/backend-choice';

function mlp(hidden: number[]): tf.LayersModel {
  const m = tf.sequential();
  hidden.forEach((units, i) =>
    m.add(tf.layers.dense({ units, activation: 'relu', ...(i ? {} : { inputShape: [64] }) })),
  );
  m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  return m;
}

function cnn(filters: number): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.reshape({ targetShape: [8, 8, 1], inputShape: [64] }));
  m.add(tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation: 'relu' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  return m;
}

describe('backend choice for a new run', function () {
  before(async () => {
    await initBackend();
  });
  const models: tf.LayersModel[] = [];
  const keep = (m: tf.LayersModel) => (models.push(m), m);
  after(() => models.forEach((m) => m.dispose()));

  it("counts a step's multiply-adds: dense kernels once, convolutions at every position and weighted, times the batch", () => {
    // 64x64 + 64x10 per example; biases do not count.
    assert.equal(stepWork(keep(mlp([64])), 32), (64 * 64 + 64 * 10) * 32);
    assert.equal(stepWork(keep(mlp([64])), 1), 64 * 64 + 64 * 10);
    // A 3x3x1x16 kernel at 8x8 positions, weighted 3; the dense layer after pooling (4x4x16 -> 10) once.
    assert.equal(stepWork(keep(cnn(16)), 32), (3 * 3 * 16 * 64 * 3 + 4 * 4 * 16 * 10) * 32);
  });

  it('a sequence of unknown length is not known to be small', () => {
    const m = tf.sequential();
    keep(m);
    m.add(tf.layers.conv1d({ filters: 4, kernelSize: 2, inputShape: [null, 3] }));
    assert.equal(stepWork(m, 32), Infinity);
    assert.equal(backendForNewRun('tensorflow', m, 32, true).name, 'tensorflow');
  });

  it('small steps go to wasm on a tensorflow process; larger ones, other defaults and no wasm stay', () => {
    const digits = keep(mlp([64]));
    const wide = keep(mlp([512, 512]));
    const small = backendForNewRun('tensorflow', digits, 32, true);
    assert.equal(small.name, 'wasm');
    assert.match(small.reason, /^a small model: 0\.15 M weighted multiply-adds per step, at most 4\.0 M/);
    assert.match(small.reason, /DURABLE_TRAIN_BACKEND=tensorflow keeps every run on tensorflow/);
    assert.equal(backendForNewRun('tensorflow', wide, 32, true).name, 'tensorflow');
    assert.match(
      backendForNewRun('tensorflow', wide, 32, true).reason,
      /^9\.6 M weighted multiply-adds per step, over/,
    );
    // The batch size counts: the same model at a large batch has work enough for tensorflow.
    assert.ok(stepWork(digits, 1024) > SMALL_STEP_WORK);
    assert.equal(backendForNewRun('tensorflow', digits, 1024, true).name, 'tensorflow');
    assert.equal(backendForNewRun('wasm', wide, 32, true).name, 'wasm');
    assert.equal(backendForNewRun('cpu', digits, 32, true).name, 'cpu');
    assert.equal(backendForNewRun('tensorflow', digits, 32, false).name, 'tensorflow');
  });

  it("a run's backend is made active for it, and the process's default comes back for everything else", async () => {
    const dflt = await initBackend();
    const other = dflt.name === 'cpu' ? 'wasm' : 'cpu';
    try {
      assert.equal((await useBackend(other)).name, other);
      assert.equal(tf.getBackend(), other);
      // A run's tensors stay usable on its backend.
      const x = tf.tensor([1, 2, 3]);
      assert.deepEqual(Array.from(await x.mul(2).data()), [2, 4, 6]);
      // Anything that asks for the process's backend gets the default back, active again.
      assert.equal((await initBackend()).name, dflt.name);
      assert.equal(tf.getBackend(), dflt.name);
      // The tensor made on the other backend is still readable (tfjs moves it when a kernel of this one reads it).
      assert.deepEqual(Array.from(await x.add(1).data()), [2, 3, 4]);
      x.dispose();
      await useBackend(other);
      assert.equal((await useBackend(null)).name, dflt.name);
      assert.equal(tf.getBackend(), dflt.name);
    } finally {
      await useBackend(null);
    }
  });

  it('workers choose per run where what computes for a run can follow its backend', () => {
    assert.equal(chooseBackends(1, true, {}), true);
    assert.equal(chooseBackends(4, true, {}), true, 'training processes train and drill one run at a time');
    assert.equal(chooseBackends(1, false, { DURABLE_TRAIN_BACKEND: 'auto' }), true, 'one slot: one activity at a time');
    assert.equal(chooseBackends(1, false, { DURABLE_TRAIN_BACKEND: ' ' }), true);
    assert.equal(chooseBackends(2, false, {}), false, 'more slots in one process: its runs share its backend');
    assert.equal(chooseBackends(1, true, { DURABLE_TRAIN_BACKEND: 'tensorflow' }), false, 'an operator named it');
    assert.equal(backendIsAuto({ DURABLE_TRAIN_BACKEND: 'wasm' }), false);
  });
});
