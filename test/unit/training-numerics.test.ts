// The numerics version (the gradient math) a checkpoint records, and the guard that keeps a checkpoint from being
// continued silently with the other math: on the suite's backend (wasm, numerics 1) a checkpoint recorded under
// numerics 2 is refused, naming both versions, unless the spec accepts the change; a checkpoint written before the
// field existed reads as numerics 1 and continues exactly.
import * as assert from 'assert';
import * as tf from '@tensorflow/tfjs';
import type { Manifest } from '../../checkpoint';
import { restoreTrainer } from '../../activities/chunk/restore';
import { FailureTypes } from '../../activities/types';
import type { RunSpec } from '../../spec/types';
import { Trainer, type TrainerSnapshot } from '../../training';
import { initBackend, type BackendInfo } from '../../training/backend';
import {
  defaultNumerics,
  NUMERICS_ENV_VAR,
  numericsChangeRefusal,
  recordedNumerics,
  restoreNumerics,
  type NumericsVersion,
} from '../../training/numerics';

const spec: RunSpec = {
  model: 'mnist-cnn',
  dataset: { name: 'mnist', trainLimit: 128, testLimit: 32 },
  epochs: 1,
  batchSize: 32,
  seed: 3,
  dropout: 0.25,
  optimizer: { name: 'adam', learningRate: 1e-3 },
  chunkSteps: 10,
  chunkSeconds: 60,
  checkpoint: { storage: 'file://unused' },
} as RunSpec;

/** A deep copy whose state records `numerics` (undefined: a checkpoint from before the field). */
function withNumerics(snap: TrainerSnapshot, numerics: NumericsVersion | undefined): TrainerSnapshot {
  const state = JSON.parse(JSON.stringify(snap.state)) as TrainerSnapshot['state'];
  if (numerics === undefined) delete state.numerics;
  else state.numerics = numerics;
  return { tensors: snap.tensors.map((t) => ({ ...t, data: t.data.slice() })), state };
}

/** The manifest fields restoreTrainer reads, around a snapshot (the checkpoint manager is tested elsewhere). */
function manifestOf(snap: TrainerSnapshot, t: Trainer, backend: string): [Manifest, Map<string, Uint8Array>] {
  const manifest = {
    id: 'step-000000002-test',
    step: snap.state.step,
    blobs: snap.tensors.map((b) => ({ name: b.name, dtype: b.dtype, shape: b.shape, sha256: '', size: 0 })),
    state: snap.state,
    fingerprints: { model: t.info.modelFingerprint, dataset: t.info.datasetFingerprint },
    backend: { name: backend, version: tf.version.tfjs },
  } as unknown as Manifest;
  return [manifest, new Map(snap.tensors.map((b) => [b.name, b.data]))];
}

describe('numerics version (gradient math) in checkpoints', function () {
  this.timeout(300_000);
  let backend: BackendInfo;
  let snap: TrainerSnapshot;
  let info: Trainer['info'];
  let uninterruptedHash: string;

  before(async () => {
    backend = await initBackend();
    assert.strictEqual(backend.name, 'wasm', 'the suite pins wasm');
    const t = await Trainer.create(spec);
    try {
      await t.train({ maxSteps: 2 });
      snap = t.snapshot();
      info = t.info;
      await t.train({ maxSteps: 2 });
      uninterruptedHash = t.weightsSha256();
    } finally {
      t.dispose();
    }
  });

  it('names the versions, reads an absent field as 1, and refuses unknown values', () => {
    assert.strictEqual(defaultNumerics('wasm'), 1);
    assert.strictEqual(defaultNumerics('cpu'), 1);
    assert.strictEqual(defaultNumerics('tensorflow'), 2);
    process.env[NUMERICS_ENV_VAR] = '1';
    try {
      assert.strictEqual(defaultNumerics('tensorflow'), 1);
      process.env[NUMERICS_ENV_VAR] = '3';
      assert.throws(() => defaultNumerics('tensorflow'), /DURABLE_TRAIN_NUMERICS must be one of 1, 2, got "3"/);
    } finally {
      delete process.env[NUMERICS_ENV_VAR];
    }
    assert.strictEqual(recordedNumerics({}), 1);
    assert.strictEqual(recordedNumerics({ numerics: 2 }), 2);
    assert.throws(() => recordedNumerics({ numerics: 'fast' }), /snapshot state: numerics must be one of 1, 2/);
    assert.strictEqual(numericsChangeRefusal(2, 2, {}), null);
    assert.strictEqual(numericsChangeRefusal(1, 2, { resume: { allowNumericsChange: true } }), null);
    assert.strictEqual(numericsChangeRefusal(1, 2, { resume: { allowBackendChange: true } }), null);
    const msg = numericsChangeRefusal(1, 2, { resume: { allowDatasetChange: true } });
    assert.match(msg ?? '', /computed with numerics 1 \(portable.*this worker computes with numerics 2 \(native/);
    assert.match(msg ?? '', /resume\.allowNumericsChange.*DURABLE_TRAIN_NUMERICS=1/);
  });

  it('a restore continues with the checkpoint math where the backend computes it; DURABLE_TRAIN_NUMERICS overrides', () => {
    assert.strictEqual(restoreNumerics(1, 'tensorflow'), 1, 'a run from before numerics 2 goes on with 1');
    assert.strictEqual(restoreNumerics(2, 'tensorflow'), 2);
    assert.strictEqual(restoreNumerics(1, 'wasm'), 1);
    assert.strictEqual(restoreNumerics(2, 'wasm'), 1, 'wasm computes only 1: a change, for the guard to refuse');
    process.env[NUMERICS_ENV_VAR] = '2';
    try {
      assert.strictEqual(restoreNumerics(1, 'tensorflow'), 2);
    } finally {
      delete process.env[NUMERICS_ENV_VAR];
    }
  });

  it('every snapshot records the version the trainer computes with', () => {
    assert.strictEqual(info.numerics, 1);
    assert.strictEqual(snap.state.numerics, 1);
  });

  it('the resume guard refuses a checkpoint of the other math, naming both, and the spec can accept it', async () => {
    const [manifest, blobs] = manifestOf(withNumerics(snap, 2), { info } as Trainer, 'wasm');
    await assert.rejects(restoreTrainer(spec, backend, manifest, blobs), (err: Error & { type?: string }) => {
      assert.strictEqual(err.type, FailureTypes.ResumeGuard);
      assert.match(err.message, /checkpoint step-000000002-test cannot continue on this worker/);
      assert.match(err.message, /computed with numerics 2 \(native.*this worker computes with numerics 1 \(portable/);
      return true;
    });
    // Trainer.fromSnapshot refuses too, for callers that restore without the activity's guard.
    await assert.rejects(
      Trainer.fromSnapshot(spec, withNumerics(snap, 2)),
      /snapshot: it was computed with numerics 2/,
    );

    const accepted = { ...spec, resume: { allowNumericsChange: true } } as RunSpec;
    const [m2, b2] = manifestOf(withNumerics(snap, 2), { info } as Trainer, 'wasm');
    const t = await restoreTrainer(accepted, backend, m2, b2);
    try {
      assert.strictEqual(t.info.numerics, 1);
      assert.strictEqual(t.snapshot().state.numerics, 1, 'the run continues under, and records, the new math');
    } finally {
      t.dispose();
    }
  });

  it('a checkpoint without the field (written before it existed) continues exactly, as numerics 1', async () => {
    const [manifest, blobs] = manifestOf(withNumerics(snap, undefined), { info } as Trainer, 'wasm');
    assert.strictEqual('numerics' in (manifest.state as object), false);
    const t = await restoreTrainer(spec, backend, manifest, blobs);
    try {
      await t.train({ maxSteps: 2 });
      assert.strictEqual(t.weightsSha256(), uninterruptedHash);
      assert.strictEqual(t.snapshot().state.numerics, 1);
    } finally {
      t.dispose();
    }
  });
});
