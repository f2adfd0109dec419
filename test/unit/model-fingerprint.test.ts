// Model fingerprints and weight paths that do not depend on tfjs's generated names: a registered builder that names
// nothing (so tfjs names its layers from a process-wide counter, differently each time it runs) resumes through the
// chunk activity's restore, twice in the same process as a retry would, and ends with the uninterrupted weights.
// Checkpoints written before the fingerprint version existed (version 1) still pass the model check.
import * as assert from 'assert';
import * as tf from '@tensorflow/tfjs';
import type { Manifest } from '../../checkpoint';
import { restoreTrainer } from '../../activities/chunk/restore';
import type { RunSpec } from '../../spec/types';
import { Trainer, type TrainerSnapshot } from '../../training';
import { initBackend, type BackendInfo } from '../../training/backend';
import { buildFromLayers, buildModel } from '../../training/models';
import {
  isGeneratedLayerName,
  recordedFingerprintVersion,
  renameLegacyTensors,
} from '../../training/model-fingerprint';
import { register } from '../../training/registry';

// No names anywhere: the model and every layer get tfjs's counter names.
register({
  models: {
    'fp-unnamed': ({ inputShape, outputs }) =>
      tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape, filters: 4, kernelSize: 3, activation: 'relu' }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.flatten(),
          tf.layers.dropout({ rate: 0.2 }),
          tf.layers.dense({ units: 16, activation: 'relu' }),
          tf.layers.batchNormalization(),
          tf.layers.dense({ units: outputs, activation: 'softmax' }),
        ],
      }),
  },
});

const spec: RunSpec = {
  model: { registered: 'fp-unnamed' },
  dataset: { name: 'mnist', trainLimit: 128, testLimit: 32 },
  epochs: 1,
  batchSize: 16,
  seed: 11,
  optimizer: { name: 'adam', learningRate: 1e-3 },
  chunkSteps: 4,
  chunkSeconds: 60,
  checkpoint: { storage: 'file://unused' },
} as RunSpec;

/** The manifest fields restoreTrainer reads, around a snapshot (the checkpoint manager is tested elsewhere). */
function manifestOf(snap: TrainerSnapshot, fingerprint: string, dataset: string): [Manifest, Map<string, Uint8Array>] {
  const manifest = {
    id: 'step-000000004-test',
    step: snap.state.step,
    blobs: snap.tensors.map((b) => ({ name: b.name, dtype: b.dtype, shape: b.shape, sha256: '', size: 0 })),
    state: snap.state,
    fingerprints: { model: fingerprint, dataset },
    backend: { name: 'wasm', version: tf.version.tfjs },
  } as unknown as Manifest;
  return [manifest, new Map(snap.tensors.map((b) => [b.name, b.data]))];
}

describe('model fingerprints without names', function () {
  this.timeout(300_000);
  let backend: BackendInfo;

  before(async () => {
    backend = await initBackend();
  });

  it('a registered builder that names nothing is killed, resumed and retried in process to the uninterrupted weights', async () => {
    const full = await Trainer.create(spec);
    let uninterrupted: string;
    let fingerprint: string;
    try {
      await full.train({ maxSteps: 8 });
      uninterrupted = full.weightsSha256();
      fingerprint = full.info.modelFingerprint;
      assert.ok(full.snapshot().tensors.some((t) => t.name === 'model/layer5_batchnormalization/moving_mean'));
    } finally {
      full.dispose();
    }
    const first = await Trainer.create(spec);
    let snap: TrainerSnapshot;
    let dataset: string;
    try {
      assert.strictEqual(first.info.modelFingerprint, fingerprint, 'a rebuilt model has the same fingerprint');
      await first.train({ maxSteps: 4 });
      snap = first.snapshot();
      dataset = first.info.datasetFingerprint;
      assert.strictEqual(snap.state.fingerprintVersion, 2);
    } finally {
      first.dispose(); // the worker is killed here
    }
    const [manifest, blobs] = manifestOf(snap, fingerprint, dataset);
    // An activity attempt restores and fails before training (e.g. a lost heartbeat); the retry in the same process
    // builds the model again, with other tfjs names, and continues.
    const attempt = await restoreTrainer(spec, backend, manifest, blobs);
    attempt.dispose();
    const resumed = await restoreTrainer(spec, backend, manifest, blobs);
    try {
      await resumed.train({ maxSteps: 4 });
      assert.ok(resumed.done);
      assert.strictEqual(resumed.weightsSha256(), uninterrupted);
    } finally {
      resumed.dispose();
    }
  });

  it('keeps the names and the version-1 fingerprints checkpoints recorded before versions existed', async () => {
    // Computed by the code before fingerprint versions (and the same in every process: these models name every layer).
    const cnn = buildModel('mnist-cnn', 0.25);
    const mlp = buildModel('mnist-mlp', 0);
    const list = buildFromLayers(
      [
        { type: 'conv2d', filters: 4, kernelSize: 3 },
        { type: 'batchNormalization', name: 'bn' },
        { type: 'flatten' },
        { type: 'dense', units: 10, activation: 'softmax' },
      ],
      [28, 28, 1],
    );
    try {
      assert.strictEqual(cnn.legacyFingerprint(), '97de4c90ab5f63e0df56a3b68a4285641dd7575f73b5bc3298aca26d3d28ef3f');
      assert.strictEqual(mlp.legacyFingerprint(), '219fe153509e5b8258b76f2843e896b0a858d6994ae0f25c3f873d2bcb18559d');
      assert.strictEqual(list.legacyFingerprint(), 'ebf8422e3c14bbdce1285ad16437f36ecaf3e0eb6d861b99f50a1ebd18523e0d');
      assert.deepStrictEqual(
        cnn.all.map((p) => p.name),
        ['conv1', 'conv2', 'dense1', 'dense2'].flatMap((l) => [`model/${l}/kernel`, `model/${l}/bias`]),
      );
      assert.notStrictEqual(cnn.fingerprint, mlp.fingerprint);
    } finally {
      [cnn, mlp, list].forEach((n) => n.dispose());
    }
    assert.strictEqual(recordedFingerprintVersion({}), 1);
    assert.strictEqual(recordedFingerprintVersion({ fingerprintVersion: 2 }), 2);
    assert.throws(() => recordedFingerprintVersion({ fingerprintVersion: 3 }), /fingerprintVersion 3/);
  });

  it('a version-1 checkpoint of the same run resumes exactly, its weights found under their tfjs names', async () => {
    const t = await Trainer.create(spec);
    let snap: TrainerSnapshot;
    let legacy: string;
    let dataset: string;
    let names: Array<{ name: string; legacyName?: string }>;
    let expected: string;
    try {
      await t.train({ maxSteps: 4 });
      snap = t.snapshot();
      dataset = t.info.datasetFingerprint;
      const net = (t as unknown as { net: { legacyFingerprint(): string; all: typeof names } }).net;
      legacy = net.legacyFingerprint();
      names = net.all.map((p) => ({ name: p.name, legacyName: p.legacyName }));
      await t.train({ maxSteps: 4 });
      expected = t.weightsSha256();
    } finally {
      t.dispose();
    }
    // As the code before versions wrote it: no version in the state, weights and slots under tfjs-derived names.
    const toLegacy = new Map(names.map((p) => [p.name, p.legacyName!]));
    const state = JSON.parse(JSON.stringify(snap.state)) as TrainerSnapshot['state'];
    delete state.fingerprintVersion;
    const tensors = snap.tensors.map((x) => {
      const stable = [...toLegacy.keys()].find((n) => x.name === n || x.name.endsWith(`/${n}`));
      return stable ? { ...x, name: x.name.slice(0, x.name.length - stable.length) + toLegacy.get(stable)! } : x;
    });
    assert.ok(tensors.some((x) => /^model\/conv2d_Conv2D\d+\/kernel$/.test(x.name)));
    assert.ok(tensors.some((x) => /^opt\/adam\/m\/model\/dense_Dense\d+\/kernel$/.test(x.name)));
    // The same names map back, and a rebuilt model (other tfjs names) reports its own version-1 fingerprint.
    const back = renameLegacyTensors(tensors, names);
    assert.deepStrictEqual(
      back.map((x) => x.name),
      snap.tensors.map((x) => x.name),
    );
    const resumed = await Trainer.fromSnapshot(spec, { tensors: back, state });
    try {
      assert.notStrictEqual(resumed.info.modelFingerprint, legacy, 'version 1 hashed the tfjs names');
      assert.strictEqual(resumed.state.fingerprintVersion, 1, 'a run goes on with the version it recorded');
      await resumed.train({ maxSteps: 4 });
      assert.strictEqual(resumed.weightsSha256(), expected);
    } finally {
      resumed.dispose();
    }
    const [manifest, blobs] = manifestOf({ tensors: back, state }, 'f'.repeat(64), dataset);
    await assert.rejects(restoreTrainer(spec, backend, manifest, blobs), /holds a different model topology/);
  });

  it('tells tfjs-generated layer names from given ones', () => {
    assert.ok(isGeneratedLayerName('dense_Dense12', 'Dense'));
    assert.ok(isGeneratedLayerName('batch_normalization_BatchNormalization3', 'BatchNormalization'));
    assert.ok(isGeneratedLayerName('conv2d_Conv2D1_input', 'InputLayer'));
    assert.ok(isGeneratedLayerName('input4', 'InputLayer'));
    assert.ok(!isGeneratedLayerName('dense1', 'Dense'));
    assert.ok(!isGeneratedLayerName('dense_1', 'Dense'));
    assert.ok(!isGeneratedLayerName('feat1', 'Dense'));
    assert.ok(!isGeneratedLayerName('conv1_input', 'InputLayer'));
  });
});
