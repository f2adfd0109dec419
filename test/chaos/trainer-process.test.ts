// Supervised training processes under real failures: the training process of a worker SIGKILLed at random points
// (the worker survives and restarts it at once), the whole worker SIGKILLed with a standby worker (a short heartbeat
// timeout), a training process that dies at the same step again and again (a crash loop, reported), and a run whose
// backend is poisoned next to a healthy run on the same worker. Every run that finishes ends with the weights hash of
// the same spec run without interruption.
import * as assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, waitFor, writeSpec, type WorkerProcess } from '../helpers/cluster';
import { trainerOf, trainerPids } from '../helpers/trainer-process';
import { chunkProgressed, runningChunk, useCluster } from '../helpers/fixtures';

const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 3200, testLimit: 200, validationFraction: 0 },
  epochs: 1,
  batchSize: 8,
  chunkSteps: 250,
  seed: 4321,
  dropout: 0.2,
  augment: { shift: 2 },
  optimizer: { name: 'adam', learningRate: 0.001 },
  checkpoint: { storage: 'file://.data/checkpoints', everySeconds: 1, keepLatest: 3 },
  // Test workers notice a lost worker in 2 s instead of the default 10 s.
  heartbeatTimeoutSeconds: 2,
};

describe('supervised training processes (real dev server, real workers, SIGKILLs)', function () {
  this.timeout(180_000);
  const fx = useCluster();
  const workers: WorkerProcess[] = [];
  // A failed test shows what its workers said.
  afterEach(function () {
    if (this.currentTest?.state === 'failed' || process.env.SHOW_WORKERS)
      for (const w of workers) console.error(w.output().slice(-4000));
    workers.length = 0;
  });
  const worker = async (env?: NodeJS.ProcessEnv) => {
    const w = await fx.worker({ env });
    workers.push(w);
    return w;
  };
  let reference = '';

  const start = (runId: string, s: object = spec): WorkflowHandle => {
    const r = cli(fx.cluster, ['start', '--spec', writeSpec(fx.cluster.dir, `${runId}.json`, s), '--run-id', runId]);
    assert.equal(r.code, 0, r.stderr);
    return fx.cluster.client.workflow.getHandle(runId);
  };

  before(async function () {
    const w = await worker();
    const handle = start('reference');
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    reference = result.weightsSha256!;
    await w.kill('SIGTERM');
  });

  it('the training process is SIGKILLed at three random points: the worker restarts it and the run ends exact', async function () {
    const w = await worker();
    const handle = start('child-killed');
    const kills: number[] = [];
    const trainingAgain = () => [...w.output().matchAll(/trains again at step/g)].length;
    for (let i = 0; i < 3; i++) {
      // Each kill lands while the (replacement) training process trains.
      const at = await chunkProgressed(handle, Date.now(), w);
      await waitFor(`training again after ${i} kills`, async () => trainingAgain() >= i);
      // A random moment inside training: the kill may land mid-step, mid-commit or between chunks.
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 800)));
      await waitFor('a training process on the run', async () => Number.isFinite(trainerOf(w, 'child-killed')));
      const pid = trainerOf(w, 'child-killed');
      assert.ok(pid, `a training process is running:\n${w.output()}`);
      process.kill(pid, 'SIGKILL');
      kills.push(at.step ?? 0);
      await waitFor('the killed training process replaced', async () => !trainerPids(w).includes(pid));
    }
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.weightsSha256, reference, `kills near steps ${kills.join(', ')}`);
    assert.equal(w.proc.exitCode, null, 'the worker itself survives');
    const progress = await handle.query(progressQuery);
    const restarts = progress.recoveries.filter((r) => /training process restarted/.test(r.reason));
    assert.ok(restarts.length >= 1, `restarts are recorded: ${JSON.stringify(progress.recoveries)}`);
    assert.ok(
      progress.recoveries.every((r) => r.attempt === 1),
      `no Temporal retry was needed: ${JSON.stringify(progress.recoveries)}`,
    );
  });

  it('the whole worker is SIGKILLed with a standby worker waiting: the standby takes over and the run ends exact', async function () {
    // Both workers are up before the run starts (a worker starting mid-run took longer than the run itself):
    // the one that trains is killed and the other is the standby.
    const pair = [await worker(), await worker()];
    const handle = start('worker-killed');
    const at = await chunkProgressed(handle, Date.now());
    const killed = pair.find((w) => at.identity.startsWith(`${w.proc.pid}@`));
    assert.ok(killed, `the chunk runs on one of the two workers: ${at.identity}`);
    const standby = pair.find((w) => w !== killed)!;
    await killed.kill('SIGKILL');
    // Where did the kill land? A chunk still pending on the dead worker must be retried elsewhere.
    const pending = await runningChunk(handle);
    const midChunk = pending?.identity.startsWith(`${killed.proc.pid}@`) ?? false;
    // The killed worker's training process follows it.
    await waitFor('the dead worker leaves no training process', async () => trainerPids(killed).length === 0, 10_000);
    await waitFor('the standby worker trains the run', async () => {
      const c = await runningChunk(handle);
      return c?.identity.startsWith(`${standby.proc.pid}@`);
    });
    const result = (await handle.result()) as RunResult;
    assert.equal(result.weightsSha256, reference);
    // A kill between chunks needs no retry (the next chunk simply runs on the standby), though a task handed to the
    // dead worker's last poll may still cost one; a kill inside a chunk always does.
    if (midChunk) assert.ok(result.recoveries >= 1, 'the chunk lost with the worker was retried on the standby');
  });

  it('a training process that dies at the same step every time fails the run, naming the step and the cause', async function () {
    await worker({ DURABLE_TRAIN_FAILPOINT: 'kill-trainer:crash-loop:40', DURABLE_TRAIN_TRAINER_RETRIES: '3' });
    const handle = start('crash-loop', { ...spec, checkpoint: { ...spec.checkpoint, everySeconds: undefined } });
    const err = await handle.result().then(
      () => assert.fail('the crash-looping run must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const cause = err.cause?.cause as { type?: string; message?: string } | undefined;
    assert.equal(cause?.type, 'TrainingCrashLoop', JSON.stringify(cause));
    assert.match(cause?.message ?? '', /died 3 times at step 40/);
    assert.match(cause?.message ?? '', /killed by SIGKILL/);
  });

  it('a run that poisons its backend never touches a healthy run on the same worker', async function () {
    const w = await worker({ DURABLE_TRAIN_FAILPOINT: 'poison-backend:poisoned:30' });
    const healthy = start('healthy');
    const poisoned = start('poisoned', { ...spec, seed: 99 });
    const err = await poisoned.result().then(
      () => assert.fail('the poisoned run must fail'),
      (e: unknown) => e,
    );
    const cause = (err as WorkflowFailedError).cause?.cause as { type?: string; message?: string } | undefined;
    assert.equal(cause?.type, 'TrainingCrashLoop', JSON.stringify(cause));
    assert.match(cause?.message ?? '', /at step 30.*memory access out of bounds/);
    assert.doesNotMatch(cause?.message ?? '', /checkpoint .* cannot|cannot restore/);
    const result = (await healthy.result()) as RunResult;
    assert.equal(result.weightsSha256, reference, 'the healthy run ends with its undisturbed weights');
    assert.equal(w.proc.exitCode, null, 'the worker itself survives');
  });
});
