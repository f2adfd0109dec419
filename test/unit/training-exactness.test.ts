// The proof of exactness: a run interrupted at any step, snapshotted, serialized, restored into a fresh
// Trainer and continued, ends with bitwise identical weights to an uninterrupted run on the same backend.
import * as assert from 'assert';
import { createHash } from 'crypto';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { RunSpec } from '../../spec/types';
import { Prng } from '../../training/prng';
import { Trainer, type TrainerSnapshot } from '../../training';

const base = { chunkSteps: 10, chunkSeconds: 60, checkpoint: { storage: 'file://unused' } };

// mnist-cnn: dropout, augmentation, adam, cosine; 128 / 8 = 16 steps per epoch, 2 epochs. Small batches: the cpu
// backend's convolutions cost about 2 s per batch of 32, and the breaks below need steps, not examples.
const cnnSpec: RunSpec = {
  ...base,
  model: 'mnist-cnn',
  dataset: { name: 'mnist', trainLimit: 128, testLimit: 100 },
  epochs: 2,
  batchSize: 8,
  seed: 7,
  optimizer: { name: 'adam', learningRate: 1e-3 },
  schedule: { name: 'cosine', warmupSteps: 5, minLearningRate: 1e-5 },
  augment: { shift: 2 },
  dropout: 0.25,
};

// mnist-mlp: 500 / 32 -> 16 steps per epoch, the last one a partial batch of 20.
const mlpSgdStep: RunSpec = {
  ...base,
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 500, testLimit: 300 },
  epochs: 3,
  batchSize: 32,
  seed: 0,
  optimizer: { name: 'sgd', learningRate: 0.1 },
  schedule: { name: 'step', every: 10, factor: 0.7 },
};
const mlpMomentumPlateau: RunSpec = {
  ...mlpSgdStep,
  seed: 12345,
  optimizer: { name: 'momentum', learningRate: 0.05, momentum: 0.9 },
  schedule: { name: 'plateau', metric: 'accuracy', patience: 0, factor: 0.5 },
  augment: { shift: 1 },
  dropout: 0.2,
};

const LR_OVERRIDE_STEP = 10;

/** A user override at a fixed step, so the override itself must survive snapshots. */
function overrideAt(t: Trainer): void {
  if (t.state.step === LR_OVERRIDE_STEP) t.setLearningRate(t.state.learningRate * 0.5);
}

/** Serializes a snapshot the way a checkpoint would: JSON state, tensor bytes in one buffer. */
function roundTrip(snap: TrainerSnapshot): TrainerSnapshot {
  const blob = Buffer.concat(snap.tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
  const meta = JSON.stringify({
    state: snap.state,
    tensors: snap.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, size: t.data.byteLength })),
  });
  const parsed = JSON.parse(meta) as {
    state: TrainerSnapshot['state'];
    tensors: Array<{ name: string; dtype: 'float32' | 'int32'; shape: number[]; size: number }>;
  };
  const copy = Buffer.from(blob); // a fresh buffer: nothing shared with the trainer
  let off = 0;
  return {
    state: parsed.state,
    tensors: parsed.tensors.map((t) => {
      const data = copy.subarray(off, off + t.size); // a Buffer view at an odd offset, as a codec might give
      off += t.size;
      return { name: t.name, dtype: t.dtype, shape: t.shape, data };
    }),
  };
}

async function trainToEnd(
  t: Trainer,
  onSnapshotAt?: { step: number; take: (s: TrainerSnapshot) => void },
): Promise<void> {
  await t.train({
    maxSteps: 1_000_000,
    onStep: (p) => {
      overrideAt(t);
      if (onSnapshotAt && p.step === onSnapshotAt.step) onSnapshotAt.take(t.snapshot());
    },
  });
  assert.ok(t.done);
}

interface Outcome {
  hash: string;
  state: string;
}

async function uninterrupted(
  spec: RunSpec,
  snapshotAt?: number,
): Promise<Outcome & { snap?: TrainerSnapshot; snapBytesHash?: string }> {
  const t = await Trainer.create(spec);
  let snap: TrainerSnapshot | undefined;
  let snapBytesHash: string | undefined;
  try {
    await trainToEnd(
      t,
      snapshotAt === undefined
        ? undefined
        : {
            step: snapshotAt,
            take: (s) => {
              snap = s;
              snapBytesHash = bytesHash(s);
            },
          },
    );
    return { hash: t.weightsSha256(), state: JSON.stringify(t.state), snap, snapBytesHash };
  } finally {
    t.dispose();
  }
}

function bytesHash(s: TrainerSnapshot): string {
  const h = createHash('sha256');
  for (const t of s.tensors) h.update(t.name).update(t.data);
  return h.digest('hex') + JSON.stringify(s.state);
}

/**
 * Trains with a snapshot -> dispose -> serialize -> fromSnapshot cycle at each step in `breaks`.
 * `tamper` may alter a snapshot before it is restored.
 */
async function interrupted(
  spec: RunSpec,
  breaks: number[],
  opts: { start?: TrainerSnapshot; tamper?: (s: TrainerSnapshot) => void } = {},
): Promise<Outcome> {
  let t = opts.start ? await Trainer.fromSnapshot(spec, roundTrip(opts.start)) : await Trainer.create(spec);
  try {
    for (const b of breaks) {
      const r = await t.train({ maxSteps: b - t.state.step, onStep: () => overrideAt(t) });
      assert.strictEqual(r.state.step, b);
      const snap = roundTrip(t.snapshot());
      t.dispose();
      opts.tamper?.(snap);
      t = await Trainer.fromSnapshot(spec, snap);
      assert.strictEqual(t.state.step, b);
    }
    await trainToEnd(t);
    return { hash: t.weightsSha256(), state: JSON.stringify(t.state) };
  } finally {
    t.dispose();
  }
}

for (const backend of ['cpu', 'wasm']) {
  describe(`training exactness on ${backend}`, function () {
    this.timeout(1_800_000);
    before(async () => {
      assert.ok(await tf.setBackend(backend), `backend ${backend} failed to initialize`);
    });

    it('mnist-cnn (dropout, shift, adam, cosine): breaks mid-epoch, at an epoch end, and in onStep', async () => {
      // The uninterrupted run also takes a snapshot inside onStep at step 5, as the activity does on a timer.
      const a = await uninterrupted(cnnSpec, 5);
      assert.ok(a.snap && a.snapBytesHash);
      // The snapshot taken at step 5 must not have changed while the run went on.
      assert.strictEqual(bytesHash(a.snap), a.snapBytesHash);
      const b = await interrupted(cnnSpec, [16, 23], { start: a.snap });
      assert.strictEqual(b.hash, a.hash);
      assert.strictEqual(b.state, a.state);
      const st = JSON.parse(a.state) as Trainer['state'];
      assert.strictEqual(st.step, 32);
      assert.strictEqual(st.metrics.evals.length, 2);
    });

    it('mnist-mlp (sgd, step schedule, partial last batch): breaks at 0, mid-epoch, epoch ends', async () => {
      const a = await uninterrupted(mlpSgdStep);
      const b = await interrupted(mlpSgdStep, [0, 7, 16, 32, 40]);
      assert.strictEqual(b.hash, a.hash);
      assert.strictEqual(b.state, a.state);
    });

    it('mnist-mlp (momentum, plateau, dropout, shift): breaks mid-epoch and at an epoch end', async () => {
      const a = await uninterrupted(mlpMomentumPlateau);
      const b = await interrupted(mlpMomentumPlateau, [3, 16, 29]);
      assert.strictEqual(b.hash, a.hash);
      assert.strictEqual(b.state, a.state);
      const st = JSON.parse(a.state) as Trainer['state'];
      assert.strictEqual(st.metrics.evals.length, 3);
      assert.deepStrictEqual(
        (st.schedule as { overrides: Array<{ step: number }> }).overrides.map((o) => o.step),
        [LR_OVERRIDE_STEP],
      );

      // Negative control: the same restore with the PRNG reseeded must NOT reproduce the run.
      const c = await interrupted(mlpMomentumPlateau, [3], {
        tamper: (s) => {
          s.state.rng = Prng.fromSeed(999).getState();
        },
      });
      assert.notStrictEqual(c.hash, a.hash);
    });
  });
}
