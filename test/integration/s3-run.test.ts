// Training runs with checkpoints on a real S3-compatible server (SeaweedFS, started by the test).
import * as assert from 'node:assert/strict';
import type { RunResult } from '../../workflows/progress';
import {
  cli,
  spawnWorker,
  startCluster,
  waitFor,
  writeSpec,
  type TestCluster,
  type WorkerProcess,
} from '../helpers/cluster';
import { startS3Server, type S3TestServer } from '../helpers/s3-server';

describe('runs with checkpoints on S3 (real SeaweedFS S3 gateway, real dev server)', function () {
  this.timeout(600_000);
  let s3: S3TestServer;
  let cluster: TestCluster;
  const workers: WorkerProcess[] = [];
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
    [s3, cluster] = await Promise.all([startS3Server(), startCluster()]);
    s3env = {
      DURABLE_TRAIN_S3_ENDPOINT: s3.endpoint,
      AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKey,
      AWS_SECRET_ACCESS_KEY: s3.secretKey,
    };
  });
  after(async function () {
    for (const w of workers) await w.kill('SIGKILL');
    await cluster?.close();
    await s3?.stop();
  });

  it('a run on S3 killed mid-chunk ends with the same weights as the same run on local disk', async function () {
    const w = spawnWorker(cluster, { env: s3env });
    workers.push(w);
    await w.ready;
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
    await waitFor('a chunk on the worker', async () =>
      (await handle.describe()).raw.pendingActivities?.some((a) => a.activityType?.name === 'trainChunk'),
    );
    await new Promise((r) => setTimeout(r, 1500));
    await w.kill('SIGKILL');
    const w2 = spawnWorker(cluster, { env: s3env });
    workers.push(w2);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.weightsSha256, localResult.weightsSha256, 'storage does not change the numbers');

    const list = cli(cluster, ['checkpoints', 'list', 'on-s3', '--verify', '--json'], { env: s3env });
    assert.equal(list.code, 0, list.stderr);
    const ckpts = list.json<Array<{ id: string; valid: boolean; step: number }>>();
    assert.ok(ckpts.length >= 1 && ckpts.length <= 4, JSON.stringify(ckpts));
    assert.ok(ckpts.every((c) => c.valid));
    assert.equal(ckpts[ckpts.length - 1].id, result.lastCheckpoint?.id);
    await w2.kill('SIGTERM');
  });

  it('a save failure is never silent: with read-only credentials the run fails at once, naming the storage', async function () {
    const w = spawnWorker(cluster, {
      env: { ...s3env, AWS_ACCESS_KEY_ID: s3.readOnlyAccessKey, AWS_SECRET_ACCESS_KEY: s3.readOnlySecretKey },
    });
    workers.push(w);
    await w.ready;
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
    assert.match(status.failure, /not writable/);
    await w.kill('SIGTERM');
  });
});
