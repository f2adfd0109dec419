// Data-parallel rounds, in process: shards, replica streams, the combination, the distributed spec block, and the
// trainer hooks a replica uses (a shard, an epoch end left to the sync), down to replicas: 1 == the plain trainer.
import * as assert from 'node:assert/strict';
import { roundSteps, stepCounts } from '../../spec/helpers';
import { SpecError, validateSpec } from '../../spec/validate';
import type { RunSpec } from '../../spec/types';
import { Trainer } from '../../training';
import { Prng } from '../../training/prng';
import { averageOf, outerStep, replicaPrngState, replicaRunId, shardOf } from '../../training/replicas';
import { roundCurve } from '../../activities/replica';

const base = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 600, testLimit: 100 },
  epochs: 2,
  batchSize: 50,
  optimizer: { name: 'adam', learningRate: 0.003 },
  checkpoint: { storage: 'file://x' },
};

describe('training/replicas: shards', () => {
  it('partitions each epoch into equal contiguous blocks, the remainder left out; one replica takes it all', () => {
    assert.deepEqual(shardOf(600, 1, 0), { start: 0, rows: 600 });
    assert.deepEqual(
      [0, 1, 2, 3].map((r) => shardOf(10, 4, r)),
      [
        { start: 0, rows: 2 },
        { start: 2, rows: 2 },
        { start: 4, rows: 2 },
        { start: 6, rows: 2 },
      ],
    );
    assert.throws(() => shardOf(3, 4, 0), /no example per shard/);
    assert.throws(() => shardOf(10, 2, 2), /replica index/);
  });

  it('gives every replica but the first its own seeded stream, stable across calls', () => {
    const a = replicaPrngState(42, 1);
    assert.deepEqual(replicaPrngState(42, 1), a);
    assert.notDeepEqual(replicaPrngState(42, 2), a);
    assert.notDeepEqual(replicaPrngState(43, 1), a);
    assert.notDeepEqual(a, Prng.fromSeed(42).getState());
    assert.throws(() => replicaPrngState(42, 0), /continues the run stream/);
    assert.equal(replicaRunId('run-1', 3), 'run-1.replica-3');
  });

  it('cuts rounds at syncEverySteps, at epoch ends and at the end of the run', () => {
    assert.equal(roundSteps(0, 12, 24, 5), 5);
    assert.equal(roundSteps(10, 12, 24, 5), 2);
    assert.equal(roundSteps(12, 12, 24, 5), 5);
    assert.equal(roundSteps(22, 12, 24, 5), 2);
    assert.equal(roundSteps(24, 12, 24, 5), 0);
  });
});

describe('activities/replica: the round curve for the run metrics log', () => {
  const at = (step: number, loss: number, accuracy: number | null, sps = 10) => ({
    step,
    loss,
    accuracy,
    learningRate: 0.01,
    samplesPerSec: sps,
  });
  it('averages loss and accuracy over the replicas per step, sums samples/s, keeps replica 0 learning rate', () => {
    const curve = roundCurve([
      [at(5, 1, 0.5, 10), at(6, 0.5, 0.25, 12)],
      [at(5, 3, 1, 20), at(6, 1.5, 0.75, 18)],
    ]);
    assert.deepEqual(curve, [at(5, 2, 0.75, 30), at(6, 1, 0.5, 30)]);
    // One replica: its own numbers, bit for bit.
    const one = [at(1, 0.1 + 0.2, 0.3)];
    assert.deepEqual(roundCurve([one]), one);
  });
  it('has no accuracy when a replica has none, and no curve when a replica kept none or a different length', () => {
    assert.equal(roundCurve([[at(1, 1, null)], [at(1, 1, 0.5)]])[0].accuracy, null);
    assert.deepEqual(roundCurve([[at(1, 1, 1)], undefined]), []);
    assert.deepEqual(roundCurve([[at(1, 1, 1)], [at(1, 1, 1), at(2, 1, 1)]]), []);
  });
});

describe('training/replicas: combine', () => {
  it('averages in replica order; one replica is returned bit for bit', () => {
    const w = Float32Array.of(0.1, -3.5e-8, 1e30, 7);
    assert.deepEqual(averageOf([w]), w);
    assert.deepEqual(averageOf([Float32Array.of(1, 2), Float32Array.of(3, 5)]), Float32Array.of(2, 3.5));
    assert.deepEqual(outerStep({ name: 'average' }, w, [w], null), { weights: w, buffer: null });
    assert.throws(() => averageOf([Float32Array.of(1), Float32Array.of(1, 2)]), /lengths differ/);
  });

  it('nesterov steps along the averaged pseudo-gradient with momentum', () => {
    const global = Float32Array.of(1, 1);
    const reps = [Float32Array.of(0.5, 1), Float32Array.of(0.7, 1)];
    // g = 1 - 0.6 = 0.4; buf = 0.4; update = 0.4 + 0.9 * 0.4 = 0.76; w = 1 - 0.5 * 0.76 = 0.62
    const s1 = outerStep({ name: 'nesterov', learningRate: 0.5, momentum: 0.9 }, global, reps, null);
    assert.ok(Math.abs(s1.weights[0] - 0.62) < 1e-6, `${s1.weights[0]}`);
    assert.equal(s1.weights[1], 1);
    assert.ok(Math.abs(s1.buffer![0] - 0.4) < 1e-6);
    // With lr 1 and momentum 0 it is the plain average.
    const s2 = outerStep({ name: 'nesterov', learningRate: 1, momentum: 0 }, global, reps, null);
    assert.ok(Math.abs(s2.weights[0] - 0.6) < 1e-6);
    assert.throws(() => outerStep({ name: 'adam' as never }, global, reps, null), /unknown outer optimizer "adam"/);
  });
});

describe('spec: distributed block', () => {
  const refused = (distributed: unknown, field: string, message: RegExp) => {
    assert.throws(
      () => validateSpec({ ...base, distributed }),
      (err: unknown) => err instanceof SpecError && err.field === field && message.test(err.message),
    );
  };

  it('accepts a block and fills in the outer default', () => {
    const s = validateSpec({ ...base, distributed: { replicas: 2, syncEverySteps: 6 } });
    assert.deepEqual(s.distributed, { replicas: 2, syncEverySteps: 6, outer: { name: 'average' } });
    const n = validateSpec({ ...base, distributed: { replicas: 2, syncEverySteps: 6, outer: { name: 'nesterov' } } });
    assert.deepEqual(n.distributed?.outer, { name: 'nesterov', learningRate: 0.7, momentum: 0.9 });
  });

  it('refuses replicas 0, a round longer than an epoch of a shard, an unknown outer optimizer, naming the field', () => {
    refused({ replicas: 0, syncEverySteps: 1 }, 'distributed.replicas', />= 1|>=1|too small/);
    // 600 examples / 2 replicas = 300 per shard = 6 steps of 50.
    refused({ replicas: 2, syncEverySteps: 7 }, 'distributed.syncEverySteps', /6 steps/);
    refused({ replicas: 2, syncEverySteps: 2, outer: { name: 'adam' } }, 'distributed.outer.name', /average|nesterov/);
    refused({ replicas: 601, syncEverySteps: 1 }, 'distributed.replicas', /no training example/);
    refused({ replicas: 2, syncEverySteps: 2, extra: 1 }, 'distributed.extra', /unknown field/);
  });

  it('counts the steps of one replica', () => {
    const s = validateSpec({ ...base, distributed: { replicas: 4, syncEverySteps: 3 } });
    assert.deepEqual(stepCounts(s), { stepsPerEpoch: 3, totalSteps: 6 });
  });
});

describe('trainer hooks for replicas', function () {
  this.timeout(120_000);
  const spec = (distributed?: RunSpec['distributed']): RunSpec =>
    validateSpec({ ...base, dataset: { name: 'mnist', trainLimit: 200, testLimit: 50 }, batchSize: 32, distributed });

  it('replicas: 1 with the epoch end deferred to a restored trainer equals the plain trainer bit for bit', async () => {
    const plain = await Trainer.create(spec());
    await plain.train({ maxSteps: 100 });
    const want = plain.weightsSha256();
    const evals = plain.state.metrics.evals;
    plain.dispose();

    const s = spec({ replicas: 1, syncEverySteps: 4 });
    let t = await Trainer.create(s, { replica: 0, deferEpochEnd: true });
    let rounds = 0;
    while (!t.done || t.epochEndPending) {
      await t.train({ maxSteps: 4 });
      // The sync: a new trainer from the replica's snapshot finishes the epoch the replica left open.
      const next = await Trainer.fromSnapshot(s, t.snapshot(), { replica: 0, deferEpochEnd: true });
      t.dispose();
      t = next;
      await t.completeEpoch();
      rounds++;
      if (t.done && !t.epochEndPending) break;
    }
    assert.ok(rounds >= 4, `rounds ${rounds}`);
    assert.equal(t.weightsSha256(), want);
    assert.deepEqual(t.state.metrics.evals, evals);
    t.dispose();
  });

  it('a replica trains only its shard and stops at the epoch end', async () => {
    const s = spec({ replicas: 2, syncEverySteps: 4 });
    const a = await Trainer.create(s, { replica: 0, deferEpochEnd: true });
    const b = await Trainer.create(s, { replica: 1, deferEpochEnd: true });
    assert.equal(a.state.stepsPerEpoch, 4); // 100 examples per shard / 32
    assert.equal(a.weightsSha256(), b.weightsSha256()); // same initial weights
    const r = await a.train({ maxSteps: 10 });
    assert.equal(r.stepsRun, 4);
    assert.ok(a.epochEndPending);
    assert.equal(r.evals.length, 0);
    await b.train({ maxSteps: 10 });
    assert.notEqual(a.weightsSha256(), b.weightsSha256()); // different shards
    const ev = await a.completeEpoch();
    assert.equal(ev?.step, 4);
    assert.ok(!a.epochEndPending);
    a.dispose();
    b.dispose();
  });
});

describe('worker --slots', () => {
  it('takes an integer from 1 to 64 from --slots or DURABLE_TRAIN_SLOTS, the option first', async () => {
    const { slotsOption } = await import('../../cli/worker-command');
    assert.equal(slotsOption(undefined, {}), undefined);
    assert.equal(slotsOption('2', {}), 2);
    assert.equal(slotsOption(undefined, { DURABLE_TRAIN_SLOTS: '3' }), 3);
    assert.equal(slotsOption('4', { DURABLE_TRAIN_SLOTS: '3' }), 4);
    assert.throws(() => slotsOption('0', {}), /--slots must be an integer from 1 to 64, got "0"/);
    assert.throws(() => slotsOption(undefined, { DURABLE_TRAIN_SLOTS: 'many' }), /DURABLE_TRAIN_SLOTS must be/);
  });
});

describe('status lines of a distributed run', () => {
  it('lists each replica with its step and worker from the pending activities, the last round otherwise', async () => {
    const { replicaLines, replicaRows } = await import('../../cli/replicas');
    const { defaultPayloadConverter } = await import('@temporalio/common');
    const hb = { replica: 1, round: 3, step: 14, totalSteps: 16, epoch: 1, loss: 0.5, samplesPerSec: 200 };
    const view = {
      pending: [
        {
          activityType: { name: 'trainReplica' },
          heartbeatDetails: { payloads: [defaultPayloadConverter.toPayload(hb)] },
          lastWorkerIdentity: '123@host',
          attempt: 2,
        },
      ],
      progress: {
        lastRound: {
          round: 2,
          syncMs: 10,
          replicas: [0, 1].map((r) => ({
            replica: r,
            worker: `${100 + r}@host`,
            attempt: 1,
            samplesPerSec: 100,
            trainMs: 5,
            reused: false,
          })),
        },
      },
    } as never;
    const rows = replicaRows(view);
    assert.deepEqual(
      rows.map((r) => [r.replica, r.state, r.worker, r.step]),
      [
        [0, 'done', '100@host', null],
        [1, 'training', '123@host', 14],
      ],
    );
    assert.deepEqual(replicaLines(rows), [
      '  replica 0: done round 2  loss -  100 samples/s  on 100@host',
      '  replica 1: round 3 step 14  loss 0.5000  200 samples/s  on 123@host (attempt 2)',
    ]);
  });
});
