// Training runs with checkpoints on a real S3-compatible server (SeaweedFS, started by the test).
import * as assert from 'node:assert/strict';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { temporal } from '@temporalio/proto';
import { cli, waitFor, writeSpec } from '../helpers/cluster';
import { runningChunk, useCluster } from '../helpers/fixtures';
import { startS3Server, type S3TestServer } from '../helpers/s3-server';

describe('runs with checkpoints on S3 (real SeaweedFS S3 gateway, real dev server)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let s3: S3TestServer;
  let s3env: NodeJS.ProcessEnv;

  const spec = (storage: string) => ({
    model: 'mnist-mlp',
    dataset: { name: 'mnist', trainLimit: 8000, testLimit: 300 },
    epochs: 1,
    batchSize: 16,
    chunkSteps: 100,
    seed: 77,
    dropout: 0.1,
    augment: { shift: 1 },
    optimizer: { name: 'adam', learningRate: 0.001 },
    checkpoint: { storage, everySeconds: 1, keepLatest: 3 },
  });

  before(async function () {
    s3 = await startS3Server();
    s3env = {
      DURABLE_TRAIN_S3_ENDPOINT: s3.endpoint,
      AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKey,
      AWS_SECRET_ACCESS_KEY: s3.secretKey,
    };
  });
  after(async function () {
    await s3?.stop();
  });

  it('a run on S3 killed mid-chunk ends with the same weights as the same run on local disk', async function () {
    const cluster = fx.cluster;
    // Paced (every step 20 ms longer, same numbers): a chunk of 100 steps runs for over 2 s, so a kill after a
    // step seen inside a chunk lands inside it.
    const w = await fx.worker({ env: s3env, paced: { stepMs: 20 } });
    const local = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'local.json', spec('file://.data/checkpoints')),
      '--run-id',
      'local',
      '--wait',
      '--json',
    ]);
    assert.equal(local.code, 0, local.stderr + w.output());
    const localResult = local.json<{ result: RunResult }>().result;

    const s3Spec = writeSpec(cluster.dir, 's3.json', spec(`s3://${s3.bucket}/runs`));
    assert.equal(cli(cluster, ['start', '--spec', s3Spec, '--run-id', 'on-s3', '--json']).code, 0);
    const handle = cluster.client.workflow.getHandle('on-s3');
    // Kill once a chunk has reported a step in its first part: the kill lands mid-chunk.
    const seen = await waitFor(
      'a chunk to report a step in its first half',
      async () => {
        const c = await runningChunk(handle);
        return c && c.step !== null && c.step % 100 >= 10 && c.step % 100 <= 50 ? c : null;
      },
      120_000,
      50,
    );
    await w.kill('SIGKILL');
    await fx.worker({ env: s3env });
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.ok(result.recoveries >= 1, `the chunk killed at step ${seen.step} was retried: ${result.recoveries}`);
    const progress = await handle.query(progressQuery);
    assert.ok(
      progress.recoveries.some((r) => r.attempt >= 2),
      `a retried attempt is recorded: ${JSON.stringify(progress.recoveries)}`,
    );
    assert.equal(result.weightsSha256, localResult.weightsSha256, 'storage does not change the numbers');

    const list = cli(fx.cluster, ['checkpoints', 'list', 'on-s3', '--verify', '--json'], { env: s3env });
    assert.equal(list.code, 0, list.stderr);
    const ckpts = list.json<Array<{ id: string; valid: boolean; step: number }>>();
    assert.ok(ckpts.length >= 1 && ckpts.length <= 4, JSON.stringify(ckpts));
    assert.ok(ckpts.every((c) => c.valid));
    assert.equal(ckpts[ckpts.length - 1].id, result.lastCheckpoint?.id);
  });

  it('a save failure is never silent: with read-only credentials the run fails at once, naming the storage', async function () {
    const cluster = fx.cluster;
    await fx.worker({
      env: { ...s3env, AWS_ACCESS_KEY_ID: s3.readOnlyAccessKey, AWS_SECRET_ACCESS_KEY: s3.readOnlySecretKey },
    });
    const r = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'ro.json', spec(`s3://${s3.bucket}/readonly`)),
      '--run-id',
      'read-only',
      '--wait',
      '--json',
    ]);
    assert.notEqual(r.code, 0);
    const status = cli(cluster, ['status', 'read-only', '--json']).json<{ workflowStatus: string; failure: string }>();
    assert.equal(status.workflowStatus, 'FAILED');
    // Naming the storage, and why.
    assert.match(
      status.failure,
      new RegExp(`checkpoint storage s3://${s3.bucket}/readonly is not writable: .*(AccessDenied|Access Denied)`),
    );
    // At once: the activity that probes the storage ran one attempt, and no training chunk was ever scheduled.
    const history = await cluster.client.workflow.getHandle('read-only').fetchHistory();
    const events = history.events ?? [];
    const scheduled = new Map<string, string>();
    for (const e of events) {
      const a = e.activityTaskScheduledEventAttributes;
      if (a) scheduled.set(String(e.eventId), a.activityType?.name ?? '');
    }
    // prepareRun and, as the run fails, the run-failed alert: no training chunk.
    assert.deepEqual([...scheduled.values()], ['prepareRun', 'sendAlert'], 'only prepareRun (and the alert) scheduled');
    const attempts = events
      .filter((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
      .filter((e) => scheduled.get(String(e.activityTaskStartedEventAttributes?.scheduledEventId)) === 'prepareRun')
      .map((e) => e.activityTaskStartedEventAttributes?.attempt);
    assert.deepEqual(attempts, [1], 'one attempt of prepareRun, no retries');
  });
});
