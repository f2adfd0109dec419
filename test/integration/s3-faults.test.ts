// S3 faults during a real run (real SeaweedFS behind a fault-injecting proxy, real dev server, real worker process):
// 5xx answers and stalls while the run commits. Faults the store's own retries absorb change nothing; faults that
// outlast them fail the chunk as "storage unavailable", the chunk is retried from what was committed, and the run
// ends with the weights of an undisturbed run. Nothing damaged is ever committed.
import * as assert from 'node:assert/strict';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { temporal } from '@temporalio/proto';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, waitFor, writeSpec } from '../helpers/cluster';
import { smallSpec, useCluster } from '../helpers/fixtures';
import { startFaultProxy, startS3Server, type FaultProxy, type S3TestServer } from '../helpers/s3-server';

const EventType = temporal.api.enums.v1.EventType;

describe('S3 stalls and 5xx during a real run (fault proxy in front of SeaweedFS)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let s3: S3TestServer;
  let proxy: FaultProxy;
  let env: NodeJS.ProcessEnv;

  // 2 epochs of 40 steps, a commit every 8 steps: 10 chunks, each ending in a commit.
  const spec = (prefix: string) =>
    smallSpec({
      dataset: { name: 'mnist', trainLimit: 2000, testLimit: 200, validationFraction: 0 },
      chunkSteps: 8,
      checkpoint: { storage: `s3://${s3.bucket}/${prefix}`, keepLatest: 4 },
    });

  before(async function () {
    s3 = await startS3Server();
    proxy = await startFaultProxy(s3.endpoint);
    env = {
      DURABLE_TRAIN_S3_ENDPOINT: proxy.endpoint,
      AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKey,
      AWS_SECRET_ACCESS_KEY: s3.secretKey,
      // The store's own budget per request: 3 attempts of at most 1.5 s each (documented settings), so a fault
      // window of a few seconds outlasts it and reaches the activity, well inside the 10 s heartbeat timeout.
      DURABLE_TRAIN_S3_TIMEOUT_MS: '1500',
      DURABLE_TRAIN_S3_MAX_ATTEMPTS: '3',
    };
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') {
      const lines = proxy.log.map((l) => `${l.ms} ${l.method} ${l.path}${l.fault ? ` <- ${l.fault}` : ''}`);
      console.error(`S3 requests through the fault proxy:\n${lines.join('\n')}`);
    }
  });
  // The undisturbed run every faulty run must match, through the proxy without a rule.
  let reference: RunResult;
  before(async function () {
    const w = await fx.worker({ env });
    const file = writeSpec(fx.cluster.dir, 'ref.json', spec('ref'));
    // Never `start --wait` here: cli() blocks this process, and with it the proxy that the worker's requests go through.
    const ref = cli(fx.cluster, ['start', '--spec', file, '--run-id', 'ref'], { env });
    assert.equal(ref.code, 0, ref.stderr + w.output());
    reference = (await fx.cluster.client.workflow.getHandle('ref').result()) as RunResult;
    assert.equal(reference.status, 'completed');
    assert.equal(reference.recoveries, 0, 'the reference run is undisturbed');
    assert.equal(proxy.faults.length, 0);
    await w.kill('SIGKILL'); // each test runs its own worker, with its own S3 settings
  });
  beforeEach(function () {
    proxy.clear();
  });

  /** Every manifest of the runs in the bucket is listed by the CLI and verifies (read past the proxy). */
  async function assertEveryManifestVerifies(runs: string[]) {
    const directEnv = {
      ...env,
      DURABLE_TRAIN_S3_ENDPOINT: s3.endpoint,
      DURABLE_TRAIN_S3_TIMEOUT_MS: '',
      DURABLE_TRAIN_S3_MAX_ATTEMPTS: '',
    };
    const direct = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
    });
    try {
      for (const run of runs) {
        const listed = await direct.send(
          new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${run}/${run}/manifests/` }),
        );
        const keys = (listed.Contents ?? []).map((o) => o.Key ?? '');
        assert.ok(keys.length >= 1, `${run}: manifests in the bucket`);
        const list = cli(fx.cluster, ['checkpoints', 'list', run, '--verify', '--json'], { env: directEnv });
        assert.equal(list.code, 0, list.stdout + list.stderr);
        const ckpts = list.json<Array<{ id: string; valid: boolean }>>();
        assert.deepEqual(
          ckpts.map((c) => `${run}/${run}/manifests/${c.id}.json`).sort(),
          keys.sort(),
          `${run}: every manifest in the bucket is listed`,
        );
        assert.ok(
          ckpts.every((c) => c.valid),
          `${run}: every checkpoint verifies: ${JSON.stringify(ckpts)}`,
        );
      }
    } finally {
      direct.destroy();
    }
  }

  /** The last failure of each retried attempt of the run's activities (a retried attempt's started event has it). */
  async function retriedAttemptFailures(runId: string): Promise<string[]> {
    const history = await fx.cluster.client.workflow.getHandle(runId).fetchHistory();
    return (history.events ?? [])
      .filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
      .map((e) => e.activityTaskStartedEventAttributes)
      .filter((a) => (a?.attempt ?? 1) >= 2)
      .map((a) => a?.lastFailure?.message ?? '');
  }

  after(async function () {
    await proxy?.close();
    await s3?.stop();
  });

  it('absorbed 5xx, a 5xx window and stalled PUTs: chunks retried, the undisturbed hash, every manifest intact', async function () {
    const cluster = fx.cluster;
    // Paced (each step 60 ms longer, same numbers): the run lasts long enough to arm each fault mid-run.
    const worker = await fx.worker({ env, paced: { stepMs: 60 } });

    // Throughout the faulty run: every 3rd PUT answers 500 and every 4th GET 503, once per request: the store's own
    // retry of that request passes, so these never reach the activity.
    const absorbedPut = proxy.add({ method: 'PUT', status: 500, everyNth: 3, maxPerPath: 1 });
    const absorbedGet = proxy.add({ method: 'GET', status: 503, everyNth: 4, maxPerPath: 1 });
    const started = cli(
      cluster,
      ['start', '--spec', writeSpec(cluster.dir, 'faulty.json', spec('faulty')), '--run-id', 'faulty'],
      { env },
    );
    assert.equal(started.code, 0, started.stderr);
    const handle = cluster.client.workflow.getHandle('faulty');

    // A window of 503s on every PUT, from the next PUT on, for 4 s: longer than the store's retries.
    const p1 = await waitFor('step 20', async () => (await handle.query(progressQuery)).step >= 20, 120_000, 50);
    assert.ok(p1);
    const window = proxy.add({ method: 'PUT', status: 503, windowMs: 4000 });
    const firstRecovery = await waitFor(
      'a recovery after the 503 window',
      async () => (await handle.query(progressQuery)).recoveries[0],
      120_000,
      50,
    );

    // Then stalls: for 5 s from the next PUT on, every PUT is held 4 s (past the 1.5 s deadline of each attempt),
    // then forwarded: the writes the store gave up on land late.
    const stall = proxy.add({ method: 'PUT', stallMs: 4000, windowMs: 5000 });
    await waitFor(
      'a second recovery after the stalls',
      async () => (await handle.query(progressQuery)).recoveries.length >= 2,
      120_000,
      50,
    );

    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed', worker.output());
    assert.equal(result.step, reference.step);
    assert.equal(result.weightsSha256, reference.weightsSha256, 'same weights as the undisturbed run');

    // Every kind of fault was injected.
    const count = (rule: number) => proxy.faults.filter((f) => f.rule === rule).length;
    assert.ok(
      count(absorbedPut) >= 3 && count(absorbedGet) >= 1,
      `absorbed faults injected: ${JSON.stringify(proxy.faults)}`,
    );
    assert.ok(count(window) >= 3, `503 window: ${count(window)} answers`);
    assert.ok(count(stall) >= 3, `stalled PUTs: ${count(stall)}`);

    // The activity saw them: retried trainChunk attempts whose previous attempt failed naming the storage and the
    // fault (a retried activity's started event carries the last failure).
    const failures = await retriedAttemptFailures('faulty');
    assert.ok(
      failures.some((m) => /storage unavailable/.test(m) && /HTTP 503/.test(m)),
      `a chunk failed on the 503 window: ${JSON.stringify(failures)}`,
    );
    assert.ok(
      failures.some((m) => /storage unavailable/.test(m) && /TimeoutError: no answer within \d+ ms/.test(m)),
      `a chunk failed on the stalls: ${JSON.stringify(failures)}`,
    );
    const progress = await handle.query(progressQuery);
    assert.ok(
      firstRecovery.attempt >= 2 && /retry of attempt/.test(firstRecovery.reason),
      JSON.stringify(firstRecovery),
    );
    assert.ok(
      progress.recoveries.every((r) => r.attempt >= 2 && !/damaged/.test(r.reason)),
      `retries, never a fallback past damage: ${JSON.stringify(progress.recoveries)}`,
    );
    // The result counts failed attempts: each retried chunk's attempt number less one.
    assert.equal(
      result.recoveries,
      progress.recoveries.reduce((n, r) => n + r.attempt - 1, 0),
    );

    // Nothing damaged committed: every manifest in the bucket, of both runs, verifies.
    proxy.clear();
    await assertEveryManifestVerifies(['ref', 'faulty']);
    assert.equal((await handle.query(progressQuery)).lastCheckpoint?.id, result.lastCheckpoint?.id);
  });

  it('a commit stalled past the heartbeat timeout (default S3 timeouts): the attempt lives on, same hash', async function () {
    const cluster = fx.cluster;
    // The store's defaults: 30 s per attempt, longer than the 10 s heartbeat timeout. A commit keeps heartbeating
    // while it waits on storage, so a PUT held 14 s only delays the chunk: no attempt is given up, no step retrained.
    const defaults = { ...env, DURABLE_TRAIN_S3_TIMEOUT_MS: '', DURABLE_TRAIN_S3_MAX_ATTEMPTS: '' };
    const worker = await fx.worker({ env: defaults, paced: { stepMs: 60 } });
    const file = writeSpec(cluster.dir, 'stalled.json', spec('stalled'));
    assert.equal(cli(cluster, ['start', '--spec', file, '--run-id', 'stalled'], { env }).code, 0);
    const handle = cluster.client.workflow.getHandle('stalled');
    await waitFor('step 20', async () => (await handle.query(progressQuery)).step >= 20, 120_000, 50);
    // The next PUT (a commit's: the log segment, a blob or the manifest) is held 14 s, then forwarded.
    const stall = proxy.add({ method: 'PUT', stallMs: 14_000, limit: 1 });

    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed', worker.output());
    assert.equal(proxy.faults.filter((f) => f.rule === stall).length, 1, 'one stalled PUT');
    assert.equal(result.weightsSha256, reference.weightsSha256, 'same weights as the undisturbed run');
    const failures = await retriedAttemptFailures('stalled');
    assert.deepEqual(failures, [], 'no attempt was given up while its commit waited on storage');
    const progress = await handle.query(progressQuery);
    assert.deepEqual(progress.recoveries, [], 'no recovery: the stalled commit completed in its own attempt');
    assert.equal(result.recoveries, 0);
    proxy.clear();
    await assertEveryManifestVerifies(['stalled']);
  });
});
