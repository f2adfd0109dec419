// Promises the docs make about specs, kept in process (fast): the example spec `npm start` runs is valid and trains,
// and the layer kinds a layer list may use (embedding, averagePooling2d, globalAveragePooling2d, reshape) train and
// resume from a serialized snapshot to the same weights, bit for bit. (conv2d's dilationRate > 1 is refused by the spec: tfjs
// has no gradient for a dilated conv2d.)
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../cli/tools';
import { validateSpec } from '../../spec/validate';
import type { RunSpec } from '../../spec/types';
import { Trainer, type TrainerSnapshot } from '../../training';
import { initBackend } from '../../training/backend';

/** A snapshot as a checkpoint carries it: JSON state, tensor bytes copied into one fresh buffer. */
function roundTrip(snap: TrainerSnapshot): TrainerSnapshot {
  const copy = Buffer.concat(snap.tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
  let off = 0;
  return {
    state: JSON.parse(JSON.stringify(snap.state)) as TrainerSnapshot['state'],
    tensors: snap.tensors.map((t) => {
      const data = copy.subarray(off, off + t.data.byteLength);
      off += t.data.byteLength;
      return { name: t.name, dtype: t.dtype, shape: [...t.shape], data };
    }),
  };
}

/** The weights after training `spec` to the end, uninterrupted or cut (snapshot, dispose, restore) at `cutAt`. */
async function weightsAfter(spec: RunSpec, cutAt?: number): Promise<{ hash: string; state: string }> {
  let t = await Trainer.create(spec);
  try {
    if (cutAt !== undefined) {
      await t.train({ maxSteps: cutAt });
      assert.equal(t.state.step, cutAt);
      const snap = roundTrip(t.snapshot());
      t.dispose();
      t = await Trainer.fromSnapshot(spec, snap);
    }
    await t.train({ maxSteps: 1_000_000 });
    assert.ok(t.done);
    return { hash: t.weightsSha256(), state: JSON.stringify(t.state) };
  } finally {
    t.dispose();
  }
}

const small = (model: unknown): RunSpec =>
  validateSpec({
    model,
    dataset: { name: 'mnist', trainLimit: 192, testLimit: 64 },
    epochs: 1,
    batchSize: 32,
    chunkSteps: 3,
    seed: 21,
    optimizer: { name: 'adam', learningRate: 0.003 },
    checkpoint: { storage: 'file://unused' },
  });

describe('promised specs, in process (wasm)', function () {
  this.timeout(300_000);
  before(async function () {
    await initBackend('wasm'); // the suite's backend, with the kernels the trainer registers for it
  });

  it('examples/mnist-cnn.json (what `npm start` trains) is a valid spec and trains', async function () {
    const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'examples', 'mnist-cnn.json'), 'utf8')) as {
      dataset: Record<string, unknown>;
    };
    const spec = validateSpec(raw);
    assert.equal(spec.model, 'mnist-cnn');
    // The same spec on fewer examples (all 60,000 are the real run's, not a unit test's): three steps train.
    const t = await Trainer.create(
      validateSpec({ ...raw, dataset: { ...raw.dataset, trainLimit: 640, testLimit: 64 } }),
    );
    try {
      await t.train({ maxSteps: 3 });
      assert.equal(t.state.step, 3);
      assert.match(t.weightsSha256(), /^[0-9a-f]{64}$/);
    } finally {
      t.dispose();
    }
  });

  it('averagePooling2d, globalAveragePooling2d and reshape train and resume exactly', async function () {
    const spec = small({
      layers: [
        { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' },
        { type: 'averagePooling2d', poolSize: 2 },
        { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same' },
        { type: 'globalAveragePooling2d' },
        { type: 'reshape', targetShape: [2, 2] },
        { type: 'flatten' },
        { type: 'dense', units: 10, activation: 'softmax' },
      ],
    });
    const a = await weightsAfter(spec);
    const b = await weightsAfter(spec, 2);
    assert.equal(b.hash, a.hash);
    assert.equal(b.state, a.state);
    assert.equal((JSON.parse(a.state) as { step: number }).step, 6);
  });

  it('embedding (pixels as token ids) trains and resumes exactly', async function () {
    const spec = small({
      layers: [
        { type: 'reshape', targetShape: [784] },
        { type: 'embedding', inputDim: 2, outputDim: 3 },
        { type: 'flatten' },
        { type: 'dense', units: 10, activation: 'softmax' },
      ],
    });
    const a = await weightsAfter(spec);
    const b = await weightsAfter(spec, 4);
    assert.equal(b.hash, a.hash);
    assert.equal(b.state, a.state);
  });
});
