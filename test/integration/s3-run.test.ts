// Training runs with checkpoints on a real S3-compatible server (SeaweedFS, started by the test).
import * as assert from 'node:assert/strict';
import { temporal } from '@temporalio/proto';
import type { RunResult } from '../../workflows/progress';
import { cli, writeSpec } from '../helpers/cluster';
import { useCluster } from '../helpers/fixtures';
import { startS3Server, type S3TestServer } from '../helpers/s3-server';
import { killedAndDamagedRunEndsExact, localReference, storageRunSpec } from '../helpers/storage-run';

describe('runs with checkpoints on S3 (real SeaweedFS S3 gateway, real dev server)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let s3: S3TestServer;
  let s3env: NodeJS.ProcessEnv;
  /** The uninterrupted run on local disk: every run on S3 ends with its weights. */
  let reference: string;

  before(async function () {
    s3 = await startS3Server();
    s3env = {
      DURABLE_TRAIN_S3_ENDPOINT: s3.endpoint,
      AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKey,
      AWS_SECRET_ACCESS_KEY: s3.secretKey,
    };
    reference = await localReference(fx);
  });
  after(async function () {
    await s3?.stop();
  });

  it('a run on S3 killed mid-chunk, a byte flipped in its newest blob, ends with the weights of the run on local disk', async function () {
    await killedAndDamagedRunEndsExact(fx, { name: 's3', storage: `s3://${s3.bucket}/runs`, env: s3env }, reference);
  });

  it('the training process SIGKILLed during a background persist to S3: resumes from the newest durable checkpoint, exact', async function () {
    const runId = 'persist-killed-s3';
    const w = await fx.worker({ env: { ...s3env, DURABLE_TRAIN_FAILPOINT: `kill-trainer-persisting:${runId}:60` } });
    // One chunk with a commit every 50 ms: every commit past step 60 but the run's last is a background one, however
    // fast the machine trains (chunking and commits do not change the weights, so the local reference holds).
    const base = storageRunSpec(`s3://${s3.bucket}/persist`);
    const spec = { ...base, chunkSteps: 300, checkpoint: { ...base.checkpoint, everySeconds: 0.05 } };
    const file = writeSpec(fx.cluster.dir, 'persist-s3.json', spec);
    const r = cli(fx.cluster, ['start', '--spec', file, '--run-id', runId], { env: s3env });
    assert.equal(r.code, 0, r.stderr);
    // Awaited, not `--wait` in a blocking child: the worker's output is read while the run goes on.
    const result = (await fx.cluster.client.workflow.getHandle(runId).result()) as RunResult;
    assert.equal(result.weightsSha256, reference, w.output());
    // The kill landed while a checkpoint's blobs went to S3, training already past it.
    const killed = /killing myself while persisting step (\d+) \(training reached step (\d+)\)/.exec(w.output());
    assert.ok(killed, `the failpoint fired:\n${w.output()}`);
    const persisting = Number(killed[1]);
    assert.ok(Number(killed[2]) > persisting, killed[0]);
    const again = new RegExp(`run ${runId} trains again at step (\\d+)`).exec(w.output());
    assert.ok(again && Number(again[1]) - 1 < persisting, `${again?.[0]}; lost checkpoint at step ${persisting}`);
    // No manifest on the server names a missing or partial blob.
    const verify = cli(fx.cluster, ['checkpoints', 'verify', runId, '--storage', `s3://${s3.bucket}/persist`], {
      env: s3env,
    });
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  it('a save failure is never silent: with read-only credentials the run fails at once, naming the storage', async function () {
    const cluster = fx.cluster;
    await fx.worker({
      env: { ...s3env, AWS_ACCESS_KEY_ID: s3.readOnlyAccessKey, AWS_SECRET_ACCESS_KEY: s3.readOnlySecretKey },
    });
    const r = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'ro.json', storageRunSpec(`s3://${s3.bucket}/readonly`)),
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
