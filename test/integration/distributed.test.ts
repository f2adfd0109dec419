// Distributed training end to end: real dev server, real worker processes, the CLI as users run it. A worker killed
// mid-round costs one replica (retried alone from the round's start), and the final weights do not depend on how many
// workers served the run; one replica is the single-worker run, bit for bit; a bad distributed block is refused.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { FsCheckpointStore } from '../../checkpoint';
import { readMetricsLog } from '../../telemetry/metrics-log';
import { TAGS } from '../../telemetry/tensorboard';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, tmpDir, waitFor, writeSpec, type TestCluster, type WorkerProcess } from '../helpers/cluster';
import { deterministicLog, smallSpec, useCluster } from '../helpers/fixtures';
import { tensorboardRead } from '../helpers/tensorboard-read';

// 400 examples, 2 replicas: shards of 200 = 8 steps of 25 per epoch, 2 epochs, rounds of 4 steps: 4 rounds.
const plain = smallSpec({
  dataset: { name: 'mnist', trainLimit: 400, testLimit: 100, validationFraction: 0 },
  batchSize: 25,
  dropout: 0.2,
});
// The paced workers below train in their own event loop (DURABLE_TRAIN_TRAINER_PROCESS=0), where a cold start blocks
// heartbeats: as the docs advise for such workers, these runs name a longer heartbeat timeout than the default.
const distSpec = { ...plain, heartbeatTimeoutSeconds: 10, distributed: { replicas: 2, syncEverySteps: 4 } };

describe('distributed spec validation in `start` (nothing is started)', function () {
  const dir = tmpDir();
  const env = { TEMPORAL_ADDRESS: '127.0.0.1:1' };
  const cases: Array<[string, object, RegExp]> = [
    ['replicas 0', { replicas: 0, syncEverySteps: 1 }, /distributed\.replicas: must be >= 1/],
    [
      'a round longer than an epoch of a shard',
      { replicas: 2, syncEverySteps: 9 },
      /distributed\.syncEverySteps: .*8 steps/,
    ],
    [
      'an unknown outer optimizer',
      { replicas: 2, syncEverySteps: 4, outer: { name: 'adam' } },
      /distributed\.outer\.name: .*average.*nesterov/,
    ],
  ];
  for (const [name, distributed, message] of cases) {
    it(`refuses ${name}, naming the field`, function () {
      const file = writeSpec(dir, `${name.replace(/\W/g, '-')}.json`, { ...distSpec, distributed });
      const r = cli(null, ['start', '--spec', file], { cwd: dir, env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /cannot reach Temporal/);
    });
  }
});

describe('distributed training (real dev server, worker processes killed with SIGKILL)', function () {
  this.timeout(900_000);
  const fx = useCluster();
  let cluster: TestCluster;
  before(function () {
    cluster = fx.cluster;
  });

  const run = (name: string, spec: object): RunResult => {
    const file = writeSpec(cluster.dir, `${name}.json`, spec);
    const r = cli(cluster, ['start', '--spec', file, '--run-id', name, '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.status, 'completed');
    return result;
  };

  /** Pending trainReplica activities of the run: replica, round (from their heartbeats) and worker. */
  async function replicasRunning(handle: WorkflowHandle) {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING') throw new Error(`run ${handle.workflowId} is ${d.status.name}`);
    return (d.raw.pendingActivities ?? [])
      .filter((a) => a.activityType?.name === 'trainReplica')
      .map((a) => {
        const data = a.heartbeatDetails?.payloads?.[0]?.data;
        const hb = data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { replica: number; round: number }) : null;
        return { hb, identity: a.lastWorkerIdentity ?? '', attempt: a.attempt ?? 1 };
      });
  }

  it('replicas: 1 ends with the weights of the same spec without a distributed block', async function () {
    await fx.worker();
    const single = run('plain-1', plain);
    const one = run('one-replica', { ...distSpec, distributed: { replicas: 1, syncEverySteps: 5 } });
    assert.equal(one.step, single.step);
    assert.equal(one.weightsSha256, single.weightsSha256);
    assert.equal(one.accuracy, single.accuracy);
    assert.equal(one.chunks, 8); // 16 steps per epoch in rounds of 5, cut at the epoch end: 5+5+5+1, twice
    // The rounds' metrics log is the single run's, step for step (one replica's mean is its own value).
    const store = new FsCheckpointStore(path.join(cluster.dir, '.data', 'checkpoints'));
    const singleLog = await readMetricsLog(store, 'plain-1', single.step);
    const oneLog = await readMetricsLog(store, 'one-replica', one.step);
    assert.equal(singleLog.rows.length, 32);
    assert.deepEqual(deterministicLog(oneLog), deterministicLog(singleLog));
  });

  /** The uninterrupted 2-replica run (the second test runs it; the third compares with it). */
  let distRef: RunResult | undefined;

  it('a worker SIGKILLed mid-round costs one replica; the weights equal those of one worker uninterrupted', async function () {
    const reference = await fx.worker();
    const want = run('dist-ref', distSpec);
    distRef = want;
    assert.equal(want.step, 16);
    assert.equal(want.chunks, 4);
    await reference.kill('SIGKILL');

    // Two workers, paced so that a round lasts long enough to be interrupted.
    const paced = { stepMs: 1000 };
    const w1 = await fx.worker({ paced });
    const w2 = await fx.worker({ paced });
    const file = writeSpec(cluster.dir, 'dist-killed.json', distSpec);
    const started = cli(cluster, ['start', '--spec', file, '--run-id', 'dist-killed', '--json']);
    assert.equal(started.code, 0, started.stderr);
    const handle = cluster.client.workflow.getHandle('dist-killed');

    // `status` shows each replica's progress and the worker that holds it: both workers train at once.
    let lastStatus = '';
    await waitFor('status showing both replicas training, one per worker', () => {
      const r = cli(cluster, ['status', 'dist-killed', '--json']);
      lastStatus = r.stdout + r.stderr;
      const st = r.json<{ replicas: Array<{ replica: number; state: string; worker: string; step: number | null }> }>();
      const training = st.replicas.filter((x) => x.state === 'training' && x.step !== null);
      const workers = new Set(training.map((x) => x.worker.split('@')[0]));
      return Promise.resolve(
        training.length === 2 && workers.has(String(w1.proc.pid)) && workers.has(String(w2.proc.pid)),
      );
    }).catch((err: Error) => {
      throw new Error(`${err.message}; last status: ${lastStatus}`);
    });

    // Both workers train a replica of round 1 at once; then w1 dies in the middle of its replica.
    const byWorker = (w: WorkerProcess, rs: Awaited<ReturnType<typeof replicasRunning>>) =>
      rs.find((x) => x.identity.startsWith(`${w.proc.pid}@`) && x.hb && x.hb.round >= 1);
    const victim = await waitFor('a replica of round 1 on each worker', async () => {
      const rs = await replicasRunning(handle);
      const a = byWorker(w1, rs);
      return a && byWorker(w2, rs) ? a : null;
    });
    await w1.kill('SIGKILL');

    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.weightsSha256, want.weightsSha256, w2.output());
    assert.equal(result.step, want.step);

    // Only the killed worker's replica was retried; the round was kept, and the other replica's result with it.
    const progress = await handle.query(progressQuery);
    const retried = progress.recoveries.filter((r) => /retried/.test(r.reason));
    assert.equal(retried.length, 1, JSON.stringify(progress.recoveries));
    assert.match(retried[0].reason, new RegExp(`replica\\(s\\) ${victim.hb!.replica} \\(attempt 2\\) retried`));
    assert.equal(result.chunks, 4);
    assert.ok(progress.lastRound && progress.lastRound.replicas.length === 2);

    // The run's curves: every step once, the replicas' mean, equal to the uninterrupted run's; TensorBoard reads them.
    const root = path.join(cluster.dir, '.data', 'checkpoints');
    const store = new FsCheckpointStore(root);
    const refLog = await readMetricsLog(store, 'dist-ref', 16);
    const killLog = await readMetricsLog(store, 'dist-killed', 16);
    assert.deepEqual(
      killLog.rows.map((r) => r.step),
      Array.from({ length: 16 }, (_, i) => i + 1),
    );
    assert.equal(killLog.evals.length, 2);
    assert.deepEqual(deterministicLog(killLog), deterministicLog(refLog));
    const tb = tensorboardRead(root).scalars['dist-killed/tensorboard'];
    assert.deepEqual(
      tb[TAGS.loss].map(([s]) => s),
      Array.from({ length: 16 }, (_, i) => i + 1),
      'each step once in TensorBoard',
    );
    assert.equal(tb[TAGS.loss][15][1], Math.fround(killLog.rows[15].loss.sum));

    // The report draws the step-level curves and marks each sync round.
    const out = path.join(cluster.dir, 'dist-report.html');
    const report = cli(cluster, ['report', 'dist-killed', '--out', out]);
    assert.equal(report.code, 0, report.stderr);
    const page = fs.readFileSync(out, 'utf8');
    assert.equal((page.match(/class="mark sync"/g) ?? []).length, 4 * 3, 'four rounds marked on each of 3 panels');
    assert.match(page, /12\.\.16 \(round 3\)/);
    assert.match(page, /loss \(smoothed\)/);
  });

  it('a damaged round checkpoint: every replica falls back to the round before; the run ends with the uninterrupted weights', async function () {
    assert.ok(distRef, 'the uninterrupted run of the previous test');
    await fx.worker({ paced: { stepMs: 300 } });
    const file = writeSpec(cluster.dir, 'dist-damaged.json', distSpec);
    assert.equal(cli(cluster, ['start', '--spec', file, '--run-id', 'dist-damaged']).code, 0);
    const handle = cluster.client.workflow.getHandle('dist-damaged');
    await waitFor(
      'two rounds committed',
      async () => ((await handle.query(progressQuery)).lastCheckpoint?.step ?? 0) >= 8,
      120_000,
      50,
    );
    assert.equal(cli(cluster, ['pause', 'dist-damaged']).code, 0);
    await waitFor('paused', async () => (await handle.query(progressQuery)).status === 'paused', 120_000, 50);
    const paused = await handle.query(progressQuery);
    assert.ok(paused.step < 16, `paused before the end (step ${paused.step})`);

    // Flip a byte in a weights blob of the newest round checkpoint: every replica reads it.
    const dir = path.join(cluster.dir, '.data', 'checkpoints', 'dist-damaged');
    const manifests = fx.manifests('dist-damaged').sort((a: { step: number }, b: { step: number }) => a.step - b.step);
    const newest = manifests[manifests.length - 1];
    const previous = manifests[manifests.length - 2];
    assert.equal(newest.id, paused.lastCheckpoint?.id);
    const shared = new Set((previous.blobs as Array<{ sha256: string }>).map((b) => b.sha256));
    const blob = (newest.blobs as Array<{ name: string; sha256: string }>).find(
      (b) => b.name.startsWith('model/') && !shared.has(b.sha256),
    )!;
    const blobFile = path.join(dir, 'blobs', blob.sha256);
    const bytes = fs.readFileSync(blobFile);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    fs.writeFileSync(blobFile, bytes);

    assert.equal(cli(cluster, ['resume', 'dist-damaged']).code, 0);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.weightsSha256, distRef.weightsSha256, 'the fallback retrains the lost round exactly');
    const progress = await handle.query(progressQuery);
    const fallback = progress.recoveries.find((r) => /damaged checkpoint/.test(r.reason));
    assert.ok(fallback, JSON.stringify(progress.recoveries));
    assert.equal(fallback.requested, newest.id);
    assert.equal(fallback.restoredFrom, previous.id);
    assert.match(fallback.reason, new RegExp(blob.name.replace(/[/]/g, '\\/')));

    // The curves have each step once, equal to the uninterrupted run's: the lost round's segment was dropped.
    const store = new FsCheckpointStore(path.join(cluster.dir, '.data', 'checkpoints'));
    assert.deepEqual(
      deterministicLog(await readMetricsLog(store, 'dist-damaged', 16)),
      deterministicLog(await readMetricsLog(store, 'dist-ref', 16)),
    );
  });
});
