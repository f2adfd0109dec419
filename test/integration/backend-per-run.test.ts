// A backend per run: a worker that chooses its backend itself (DURABLE_TRAIN_BACKEND unset) with the native one
// available trains a small model on wasm (TensorFlow's per-op dispatch costs it more than wasm's kernels) and a larger
// one on tensorflow, the two runs' chunks taking turns in one training process. Each run ends with the weights of the
// same spec on a worker of its backend alone, every checkpoint records that backend, a SIGKILLed training process
// resumes the small run on wasm exactly, and a drill replays it on wasm.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { DrillResult } from '../../activities/drill-types';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, waitFor, writeSpec } from '../helpers/cluster';
import { chunkProgressed, smallSpec, useCluster } from '../helpers/fixtures';
import { requireNative } from '../helpers/native';
import { trainerOf, trainerPids } from '../helpers/trainer-process';

const digits = {
  format: 'csv',
  path: `file://${path.resolve('test/fixtures/data/digits.csv')}`,
  label: 'digit',
  validationFraction: 0.1,
};
const common = { dataset: digits, batchSize: 32, seed: 3, optimizer: { name: 'adam', learningRate: 0.001 } };
const dense = (units: number, activation = 'relu') => ({ type: 'dense', units, activation });
/** 64-64-10: 0.15 M weighted multiply-adds per step, under the threshold (training/backend-choice.ts). */
const small = smallSpec({ ...common, model: { layers: [dense(64), dense(10, 'softmax')] }, epochs: 3, chunkSteps: 15 });
/** The same, for long enough (1,640 steps) that a kill lands mid-run. */
const smallLong = { ...small, epochs: 40, chunkSteps: 200 };
/** 64-512-512-10: 9.6 M per step, over it. */
const wide = smallSpec({
  ...common,
  model: { layers: [dense(512), dense(512), dense(10, 'softmax')] },
  epochs: 1,
  chunkSteps: 15,
});

describe('a backend per run: small models on wasm on a worker with the native backend (real dev server, worker processes)', function () {
  this.timeout(900_000);
  before(function () {
    requireNative(this, 'the per-run backend test');
  });
  const fx = useCluster();
  const AUTO = { DURABLE_TRAIN_BACKEND: '' };
  const refs: Record<string, string> = {};

  const start = (runId: string, s: object): WorkflowHandle => {
    const r = cli(fx.cluster, ['start', '--spec', writeSpec(fx.cluster.dir, `${runId}.json`, s), '--run-id', runId]);
    assert.equal(r.code, 0, r.stderr);
    return fx.cluster.client.workflow.getHandle(runId);
  };
  const finished = async (handle: WorkflowHandle, backend: string): Promise<RunResult> => {
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.backend, backend, `${handle.workflowId} trained on ${result.backend}`);
    return result;
  };

  before(async function () {
    // References: each spec on a worker that has only the backend it should get.
    for (const [name, s, backend] of [
      ['small', small, 'wasm'],
      ['smallLong', smallLong, 'wasm'],
      ['wide', wide, 'tensorflow'],
    ] as const) {
      const w = await fx.worker({ env: { DURABLE_TRAIN_BACKEND: backend } });
      refs[name] = (await finished(start(`${name}-ref`, s), backend)).weightsSha256!;
      await w.kill('SIGTERM');
    }
  });

  it('a small and a wide run on one worker: each on its own backend, in turns, with the weights of its backend alone', async function () {
    // No spare process: the second run's chunks go to the process that trains the first, which switches backends.
    const w = await fx.worker({ env: { ...AUTO, DURABLE_TRAIN_TRAINER_SPARES: '0' } });
    const a = start('small-auto', small);
    const b = start('wide-auto', wide);
    const [ra, rb] = await Promise.all([finished(a, 'wasm'), finished(b, 'tensorflow')]);
    assert.equal(ra.weightsSha256, refs.small, w.output());
    assert.equal(rb.weightsSha256, refs.wide, w.output());
    for (const [runId, backend] of [
      ['small-auto', 'wasm'],
      ['wide-auto', 'tensorflow'],
    ]) {
      const names = new Set(fx.manifests(runId).map((m: { backend: { name: string } }) => m.backend.name));
      assert.deepEqual([...names], [backend], `${runId}'s checkpoints record its backend`);
    }
    // The two runs shared the worker's one training process, which switched backends between their chunks.
    assert.match(w.output(), /tfjs backend tensorflow[\s\S]*tfjs backend wasm/);
    assert.equal(new Set([...w.output().matchAll(/training process (\d+) takes run/g)].map((m) => m[1])).size, 1);

    // A drill on this worker replays the small run on wasm, bit for bit.
    const d = cli(fx.cluster, ['drill', 'small-auto', '--json']);
    assert.equal(d.code, 0, d.stdout + d.stderr + w.output());
    const report = d.json<DrillResult>();
    assert.equal(report.verified, true, JSON.stringify(report.differences));
    assert.equal(report.backend, 'wasm');
  });

  it('the training process of a small run is SIGKILLed: it resumes on wasm and ends with the same weights', async function () {
    const w = await fx.worker({ env: AUTO });
    const handle = start('small-killed', smallLong);
    await chunkProgressed(handle, Date.now(), w);
    await waitFor('a training process on the run', async () => Number.isFinite(trainerOf(w, 'small-killed')));
    const pid = trainerOf(w, 'small-killed');
    process.kill(pid, 'SIGKILL');
    await waitFor('the killed training process replaced', async () => !trainerPids(w).includes(pid));
    const result = await finished(handle, 'wasm');
    assert.equal(result.weightsSha256, refs.smallLong);
    const progress = await handle.query(progressQuery);
    assert.ok(
      progress.recoveries.some((r) => /training process restarted/.test(r.reason)),
      JSON.stringify(progress.recoveries),
    );
  });

  it('a worker with two slots: a small run on wasm, and its drill replayed on wasm in a training process', async function () {
    const w = await fx.worker({ env: { ...AUTO, DURABLE_TRAIN_SLOTS: '2' } });
    const result = await finished(start('small-slots', small), 'wasm');
    assert.equal(result.weightsSha256, refs.small);
    const d = cli(fx.cluster, ['drill', 'small-slots', '--json']);
    assert.equal(d.code, 0, d.stdout + d.stderr + w.output());
    const report = d.json<DrillResult>();
    assert.equal(report.verified, true, JSON.stringify(report.differences));
    assert.equal(report.backend, 'wasm');
    assert.ok(report.stepsReplayed > 0);
  });

  it('DURABLE_TRAIN_BACKEND=tensorflow keeps a small run on tensorflow', async function () {
    await fx.worker({ env: { DURABLE_TRAIN_BACKEND: 'tensorflow' } });
    const result = await finished(start('small-tf', small), 'tensorflow');
    assert.notEqual(result.weightsSha256, refs.small, 'another backend computes other float32 results');
  });
});
