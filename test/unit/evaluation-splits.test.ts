// The validation split: carved by its own seed, recorded in a new run's spec, absent from a spec recorded before it
// (whose data stays exactly as it was), evaluated at every epoch end and used for every choice, with the test split
// evaluated once at the end and never used for one.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type { RunSpec } from '../../spec/types';
import {
  builtinTrainRows,
  choiceMetric,
  hasValidationSplit,
  RECORDED_HEARTBEAT_S,
  stepCounts,
  validationRows,
  withRunDefaults,
} from '../../spec/helpers';
import { validateSpec } from '../../spec/validate';
import { Trainer } from '../../training';
import { loadTaskData } from '../../training/task-data';
import { carveValidation } from '../../training/splits';
import { register } from '../../training/registry';
import { CheckpointManager, FsCheckpointStore } from '../../checkpoint';
import { commitTrainer } from '../../activities/commit';
import { specHash } from '../../activities/fingerprint';
import { withDefaultsFor } from '../../cli/start';
import { opposedData } from '../helpers/opposed-data';

const irisSpec = (dataset: Record<string, unknown> = {}): RunSpec =>
  validateSpec({
    model: {
      layers: [
        { type: 'dense', units: 8, activation: 'relu' },
        { type: 'dense', units: 3 },
      ],
    },
    dataset: { name: 'iris', ...dataset },
    epochs: 2,
    batchSize: 16,
    seed: 7,
    optimizer: { name: 'adam', learningRate: 0.01 },
    checkpoint: { storage: 'file://unused' },
  });

describe('evaluation splits', function () {
  this.timeout(120_000);
  before(async () => {
    assert.ok(await tf.setBackend('cpu'));
    register({ datasets: { opposed: ({ seed }) => opposedData(seed) } });
  });

  it('records the default validation split in a new spec only, and leaves a recorded spec without one as it was', () => {
    const old = irisSpec();
    assert.strictEqual(old.dataset.validationFraction, undefined, 'validateSpec fills in no validation default');
    assert.strictEqual(hasValidationSplit(old), false);
    assert.strictEqual(builtinTrainRows(old), 120);
    const fresh = withRunDefaults(old);
    assert.strictEqual(fresh.dataset.validationFraction, 0.1);
    assert.strictEqual(builtinTrainRows(fresh), 108);
    assert.deepStrictEqual(stepCounts(fresh), { stepsPerEpoch: 7, totalSteps: 14 });
    assert.strictEqual(withRunDefaults(irisSpec({ validationFraction: 0 })).dataset.validationFraction, 0);
    assert.deepStrictEqual(choiceMetric(old, 'loss'), { name: 'testLoss', mode: 'min' });
    assert.deepStrictEqual(choiceMetric(fresh, 'accuracy'), { name: 'valAccuracy', mode: 'max' });
    assert.strictEqual(validationRows(10, 0.01), 1);
    assert.strictEqual(validationRows(2, 0.9), 1);
    assert.throws(() => irisSpec({ validationFraction: 1 }), /dataset\.validationFraction: must be < 1/);
  });

  it('carves validation rows by their own seed: disjoint, complete, repeatable, fingerprinted; none without a fraction', async () => {
    const before = await loadTaskData(irisSpec());
    assert.strictEqual(before.validation, null);
    assert.strictEqual(before.train.n, 120);
    const a = await loadTaskData(irisSpec({ validationFraction: 0.1 }));
    const b = carveValidation(before, 0.1, 7);
    assert.strictEqual(a.validation!.n, 12);
    assert.strictEqual(a.train.n, 108);
    assert.deepStrictEqual(Array.from(a.validation!.x), Array.from(b.validation!.x));
    assert.notStrictEqual(a.fingerprint, before.fingerprint);
    assert.notStrictEqual(carveValidation(before, 0.1, 8).fingerprint, a.fingerprint);
    // Every training row lands in exactly one of the two, in its original order.
    const rows = (x: Float32Array) =>
      Array.from({ length: x.length / 4 }, (_, i) => Array.from(x.subarray(i * 4, i * 4 + 4)).join());
    const all = rows(before.train.x);
    const parts = [...rows(a.train.x), ...rows(a.validation!.x)];
    assert.deepStrictEqual([...parts].sort(), [...all].sort());
    assert.deepStrictEqual(
      rows(a.train.x),
      all.filter((r) => rows(a.train.x).includes(r)),
    );
  });

  it("takes a new run's standardisation statistics from the training rows alone; a run recorded before keeps its own", async () => {
    const fresh = withRunDefaults(irisSpec());
    const normalizeFrom = (spec: RunSpec) => (spec.dataset as { normalizeFrom?: string }).normalizeFrom;
    assert.strictEqual(normalizeFrom(fresh), 'train');
    assert.strictEqual(
      normalizeFrom(withRunDefaults(validateSpec({ ...irisSpec(), dataset: { name: 'mnist' } }))),
      undefined,
    );
    const now = await loadTaskData(fresh);
    const recorded = irisSpec({ validationFraction: 0.1 }); // as start recorded it before normalizeFrom
    const before = await loadTaskData(recorded);
    // A recorded run's data is exactly what it was: carved after loading, with statistics over all 120 rows.
    const whole = await loadTaskData(irisSpec());
    assert.strictEqual(before.fingerprint, carveValidation(whole, 0.1, 7).fingerprint);
    assert.deepStrictEqual(before.normalization, whole.normalization);
    assert.notStrictEqual(now.fingerprint, before.fingerprint);
    // The same rows in each split, scaled by other statistics.
    assert.deepStrictEqual([now.train.n, now.validation!.n], [108, 12]);
    assert.deepStrictEqual(Array.from(now.validation!.y), Array.from(before.validation!.y));
    const raw = (x: Float32Array, st: { mean: number[]; std: number[] }) =>
      Array.from(x, (v, i) => v * st.std[i % 4] + st.mean[i % 4]);
    raw(now.validation!.x, now.normalization!).forEach((v, i) =>
      assert.ok(Math.abs(v - raw(before.validation!.x, before.normalization!)[i]) < 1e-4, `validation value ${i}`),
    );
    // Standardised on exactly the training rows: mean 0 and standard deviation 1 there (not so before).
    const moments = (d: typeof now) =>
      [0, 1, 2, 3].map((j) => {
        const col = Array.from({ length: d.train.n }, (_, r) => d.train.x[r * 4 + j]);
        const mean = col.reduce((a, b) => a + b, 0) / col.length;
        return [mean, Math.sqrt(col.reduce((a, b) => a + (b - mean) ** 2, 0) / col.length)];
      });
    for (const [mean, std] of moments(now)) assert.ok(Math.abs(mean) < 1e-5 && Math.abs(std - 1) < 1e-5);
    assert.ok(
      moments(before).some(([mean]) => Math.abs(mean) > 1e-3),
      'the old statistics included validation rows',
    );
  });

  it('start continues a run whose checkpoints were made before normalizeFrom with the spec it had', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-normalize-from-'));
    try {
      const spec = { ...irisSpec(), checkpoint: { storage: `file://${dir}` } } as RunSpec;
      const checkpointOf = async (runId: string, recorded: RunSpec) => {
        const t = await Trainer.create(recorded);
        try {
          await t.train({ maxSteps: 3 });
          const manager = new CheckpointManager(new FsCheckpointStore(dir), runId);
          await commitTrainer(manager, t, {
            backend: { name: 'cpu', version: 'x' } as never,
            specHash: specHash(recorded),
            parent: null,
            reason: 'chunk',
          });
        } finally {
          t.dispose();
        }
      };
      // Checkpoints of a run started before normalizeFrom existed: its spec had the validation default only.
      const recorded = { ...spec, dataset: { ...spec.dataset, validationFraction: 0.1 } } as RunSpec;
      await checkpointOf('old-run', recorded);
      assert.deepStrictEqual(await withDefaultsFor(spec, 'old-run'), recorded, 'continued with its own data');
      // One started after normalizeFrom, before the recorded heartbeat timeout.
      const middle = { ...spec, dataset: { ...spec.dataset, validationFraction: 0.1, normalizeFrom: 'train' } };
      await checkpointOf('middle-run', middle as RunSpec);
      assert.deepStrictEqual(await withDefaultsFor(spec, 'middle-run'), middle, 'continued with its own timeouts');
      const fresh = await withDefaultsFor(spec, 'new-run');
      assert.strictEqual((fresh.dataset as { normalizeFrom?: string }).normalizeFrom, 'train', 'the new default');
      assert.strictEqual(fresh.heartbeatTimeoutSeconds, RECORDED_HEARTBEAT_S, 'the new heartbeat default');
      const distributed = { ...spec, distributed: { replicas: 2, syncEverySteps: 1 } } as RunSpec;
      // A distributed run's replicas train in training processes too: the worker heartbeats for them every second.
      const dist = await withDefaultsFor(distributed, 'new-run');
      assert.strictEqual(dist.heartbeatTimeoutSeconds, RECORDED_HEARTBEAT_S);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps a run without a validation split as before: test at every epoch end, no split label', async () => {
    const t = await Trainer.create(irisSpec());
    try {
      const r = await t.train({ maxSteps: 1000 });
      assert.strictEqual(r.state.totalSteps, 16);
      assert.deepStrictEqual(
        r.state.metrics.evals.map((e) => [e.step, e.split]),
        [
          [8, undefined],
          [16, undefined],
        ],
      );
    } finally {
      t.dispose();
    }
  });

  it('chooses by validation (keepBest, best) while the test split is evaluated once at the end', async () => {
    const spec = validateSpec({
      model: { layers: [{ type: 'dense', units: 2 }] },
      dataset: { registered: 'opposed', validationFraction: 0.1 },
      epochs: 5,
      batchSize: 16,
      seed: 3,
      optimizer: { name: 'sgd', learningRate: 0.5 },
      checkpoint: { storage: 'file://unused', keepLatest: 1, keepBest: { k: 1, metric: 'loss' } },
    });
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-eval-'));
    const manager = new CheckpointManager(new FsCheckpointStore(root), 'r');
    const t = await Trainer.create(spec);
    const testLossAt = new Map<string, number>();
    try {
      const ids: string[] = [];
      let parent = null;
      while (!t.done) {
        await t.train({ maxSteps: t.state.stepsPerEpoch });
        const m = await commitTrainer(manager, t, {
          backend: { name: 'cpu', version: 'x' } as never,
          specHash: 'h',
          parent,
          reason: 'epoch',
        });
        parent = { runId: 'r', id: m.id };
        ids.push(m.id);
        // What a test-set choice would have seen: each epoch's checkpoint evaluated on the test split.
        testLossAt.set(m.id, t.evaluate('test').loss);
      }
      const evals = t.state.metrics.evals;
      assert.deepStrictEqual(
        evals.map((e) => e.split),
        ['validation', 'validation', 'validation', 'validation', 'validation', 'test'],
      );
      const val = evals.filter((e) => e.split === 'validation').map((e) => e.loss);
      const bestVal = val.indexOf(Math.min(...val));
      const tests = ids.map((id) => testLossAt.get(id)!);
      const bestTest = tests.indexOf(Math.min(...tests));
      assert.notStrictEqual(bestVal, bestTest, `the data makes validation and test disagree (${val} / ${tests})`);
      assert.strictEqual(t.state.metrics.best.loss, val[bestVal]);
      // The last checkpoint carries both splits' metrics apart.
      const last = await manager.readManifest(ids[ids.length - 1]);
      assert.strictEqual(last.metrics.valLoss, val[val.length - 1]);
      assert.strictEqual(last.metrics.testLoss, evals[evals.length - 1].loss);
      const kb = choiceMetric(spec, 'loss');
      const res = await manager.applyRetention({ keepLatest: 1, keepBest: { k: 1, metric: kb.name, mode: kb.mode } });
      const kept = (await manager.list()).map((c) => c.id);
      assert.ok(kept.includes(ids[bestVal]), 'the best-validation checkpoint is kept');
      if (bestTest !== ids.length - 1) assert.ok(!kept.includes(ids[bestTest]), 'the best-test one is not chosen');
      assert.ok(res.deleted.length >= 3);
    } finally {
      t.dispose();
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('a run resumed mid-way evaluates and ends exactly as an uninterrupted one', async () => {
    const spec = withRunDefaults(irisSpec());
    const a = await Trainer.create(spec);
    const b = await Trainer.create(spec);
    try {
      await a.train({ maxSteps: 1000 });
      await b.train({ maxSteps: 10 });
      const c = await Trainer.fromSnapshot(spec, b.snapshot());
      try {
        await c.train({ maxSteps: 1000 });
        assert.strictEqual(c.weightsSha256(), a.weightsSha256());
        assert.deepStrictEqual(c.state.metrics, a.state.metrics);
        assert.strictEqual(a.state.metrics.evals.at(-1)!.split, 'test');
      } finally {
        c.dispose();
      }
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  describe('early stopping', () => {
    const esSpec = (over: Record<string, unknown> = {}) =>
      validateSpec({
        model: { layers: [{ type: 'dense', units: 2 }] },
        dataset: { registered: 'opposed', validationFraction: 0.1 },
        epochs: 10,
        batchSize: 16,
        seed: 3,
        optimizer: { name: 'sgd', learningRate: 0.5 },
        checkpoint: { storage: 'file://unused' },
        earlyStopping: { metric: 'loss', patience: 1 },
        ...over,
      });

    it('stops patience + 1 epochs after the best validation epoch, evaluates test once, and a resumed run stops at the same step', async () => {
      const spec = esSpec();
      const a = await Trainer.create(spec);
      const b = await Trainer.create(spec);
      try {
        const ra = await a.train({ maxSteps: 1000 });
        assert.ok(a.done && a.stoppedEarly);
        const st = ra.state;
        assert.ok(st.step < st.totalSteps, `stopped at ${st.step} of ${st.totalSteps}`);
        const val = st.metrics.evals.filter((e) => e.split === 'validation');
        const best = val.reduce((x, e) => (e.loss < x.loss ? e : x));
        assert.strictEqual(st.metrics.earlyStopping!.bestStep, best.step);
        assert.strictEqual(st.step, best.step + 2 * st.stepsPerEpoch);
        assert.deepStrictEqual(st.metrics.evals.at(-1)!.split, 'test');
        assert.strictEqual(st.metrics.evals.filter((e) => e.split === 'test').length, 1);
        // Interrupted mid-epoch and resumed from its snapshot: the same stop, weights and bookkeeping.
        await b.train({ maxSteps: best.step + 3 });
        const c = await Trainer.fromSnapshot(spec, b.snapshot());
        try {
          await c.train({ maxSteps: 1000 });
          assert.strictEqual(c.state.step, st.step);
          assert.strictEqual(c.weightsSha256(), a.weightsSha256());
          assert.deepStrictEqual(c.state.metrics, st.metrics);
        } finally {
          c.dispose();
        }
        // A fork without early stopping continues past the stop, to the end of its epochs.
        const forkSpec = esSpec({ earlyStopping: undefined });
        const f = await Trainer.fromSnapshot(forkSpec, a.snapshot());
        try {
          assert.ok(!f.done);
          const rf = await f.train({ maxSteps: 1000 });
          assert.strictEqual(rf.state.step, rf.state.totalSteps);
        } finally {
          f.dispose();
        }
      } finally {
        a.dispose();
        b.dispose();
      }
    });

    it('ends a chunk at each epoch end so every epoch end is a checkpoint', async () => {
      const t = await Trainer.create(esSpec());
      try {
        const r = await t.train({ maxSteps: 1000, stopAtEpochEnd: true });
        assert.strictEqual(r.stepsRun, r.state.stepsPerEpoch);
      } finally {
        t.dispose();
      }
    });

    it('is refused naming the field: accuracy on regression, no validation split, distributed', () => {
      const base = {
        model: 'mnist-mlp',
        dataset: { name: 'mnist', trainLimit: 100, testLimit: 10 },
        epochs: 1,
        batchSize: 10,
        optimizer: { name: 'adam', learningRate: 0.001 },
        checkpoint: { storage: 'file://x' },
      };
      assert.throws(
        () => validateSpec({ ...base, task: 'regression', earlyStopping: { metric: 'accuracy' } }),
        /earlyStopping\.metric: a regression run computes no accuracy/,
      );
      assert.throws(
        () =>
          validateSpec({
            ...base,
            dataset: { ...base.dataset, validationFraction: 0 },
            earlyStopping: { metric: 'loss' },
          }),
        /dataset\.validationFraction: earlyStopping watches the validation split/,
      );
      assert.throws(
        () => validateSpec({ ...base, earlyStopping: { metric: 'auc' } }),
        /earlyStopping\.metric: the run does not compute auc: add it to metrics/,
      );
      assert.throws(
        () =>
          validateSpec({ ...base, earlyStopping: { metric: 'loss' }, distributed: { replicas: 2, syncEverySteps: 1 } }),
        /earlyStopping: is not supported with distributed training/,
      );
    });
  });

  describe('gradient clipping', () => {
    const clipSpec = (optimizer: Record<string, unknown>) =>
      validateSpec({
        model: {
          layers: [
            { type: 'dense', units: 8, activation: 'relu' },
            { type: 'dense', units: 3 },
          ],
        },
        dataset: { name: 'iris', validationFraction: 0.1 },
        epochs: 2,
        batchSize: 16,
        seed: 7,
        optimizer: { name: 'adam', learningRate: 0.01, ...optimizer },
        checkpoint: { storage: 'file://unused' },
      });
    const hashOf = async (spec: RunSpec, resumeAt?: number) => {
      let t = await Trainer.create(spec);
      try {
        if (resumeAt !== undefined) {
          await t.train({ maxSteps: resumeAt });
          const snap = t.snapshot();
          t.dispose();
          t = await Trainer.fromSnapshot(spec, snap);
        }
        await t.train({ maxSteps: 1000 });
        return t.weightsSha256();
      } finally {
        t.dispose();
      }
    };

    it('clips by norm or value, leaves gradients within the bound untouched, and resumes exactly', async () => {
      const plain = await hashOf(clipSpec({}));
      assert.strictEqual(await hashOf(clipSpec({ clipNorm: 1e9 })), plain, 'a bound never reached changes nothing');
      const byNorm = await hashOf(clipSpec({ clipNorm: 0.01 }));
      const byValue = await hashOf(clipSpec({ clipValue: 0.001 }));
      assert.notStrictEqual(byNorm, plain);
      assert.notStrictEqual(byValue, plain);
      assert.notStrictEqual(byNorm, byValue);
      assert.strictEqual(await hashOf(clipSpec({ clipNorm: 0.01 }), 5), byNorm);
      assert.strictEqual(await hashOf(clipSpec({ clipValue: 0.001 }), 5), byValue);
      assert.throws(
        () => clipSpec({ clipNorm: 1, clipValue: 1 }),
        /optimizer\.clipValue: give clipNorm or clipValue, not both/,
      );
      assert.throws(() => clipSpec({ clipNorm: 0 }), /optimizer\.clipNorm: must be > 0/);
    });
  });

  it('classWeights weigh a class in the loss (balanced from the train split); unknown names and regression are refused', async () => {
    const spec = (classWeights?: unknown) =>
      validateSpec({ ...irisSpec({ validationFraction: 0.1 }), ...(classWeights ? { classWeights } : {}) });
    const hash = async (s: RunSpec) => {
      const t = await Trainer.create(s);
      try {
        await t.train({ maxSteps: 1000 });
        return t.weightsSha256();
      } finally {
        t.dispose();
      }
    };
    const plain = await hash(spec());
    const classes = (await loadTaskData(spec())).classes!;
    assert.strictEqual(await hash(spec({ [classes[0]]: 1 })), plain, 'weight 1 is no weight');
    assert.notStrictEqual(await hash(spec({ [classes[0]]: 5 })), plain);
    assert.notStrictEqual(await hash(spec('balanced')), plain, 'the carved train split is not balanced');
    await assert.rejects(Trainer.create(spec({ nope: 2 })), /classWeights: "nope" is not a class of iris \(classes: /);
    assert.throws(
      () => validateSpec({ ...spec(), task: 'regression', classWeights: 'balanced' }),
      /classWeights: applies to classification and binary tasks only/,
    );
  });
});
