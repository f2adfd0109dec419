// A storage outage is not a damaged checkpoint (real dev server, real worker): while the store directory is replaced
// by a regular file, commits and reads fail and the chunk is retried as "storage unavailable"; nothing falls back past
// intact checkpoints and nothing damaged is committed. When the directory returns, the run goes on and ends with the
// weights of an undisturbed run.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, waitFor, writeSpec, type TestCluster, type WorkerProcess } from '../helpers/cluster';
import { useCluster } from '../helpers/fixtures';

const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 4000, testLimit: 200, validationFraction: 0 },
  epochs: 2,
  batchSize: 50,
  chunkSteps: 20,
  seed: 11,
  optimizer: { name: 'adam', learningRate: 0.002 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 3 },
};

describe('storage outage mid-run: retried as unavailable, never mistaken for damage', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let cluster: TestCluster;
  let worker: WorkerProcess;

  before(async function () {
    cluster = fx.cluster;
    // Paced (each step 30 ms longer, same numbers): the run lasts long enough for a pause sent by a CLI process.
    worker = await fx.worker({ paced: { stepMs: 30 } });
  });

  it('store directory replaced by a file while paused: retries, then finishes with the undisturbed hash', async function () {
    const specFile = writeSpec(cluster.dir, 'spec.json', spec);
    const ref = cli(cluster, ['start', '--spec', specFile, '--run-id', 'ref', '--wait', '--json']);
    assert.equal(ref.code, 0, ref.stderr + worker.output());
    const reference = ref.json<{ result: RunResult }>().result;

    const started = cli(cluster, ['start', '--spec', specFile, '--run-id', 'outage', '--json']);
    assert.equal(started.code, 0, started.stderr);
    const handle = cluster.client.workflow.getHandle('outage');
    await waitFor('step 40', async () => (await handle.query(progressQuery)).step >= 40, 120_000, 50);
    assert.equal(cli(cluster, ['pause', 'outage']).code, 0);
    await waitFor('paused', async () => (await handle.query(progressQuery)).status === 'paused', 60_000);
    const pausedAt = (await handle.query(progressQuery)).step;
    assert.ok(pausedAt < 160, `paused before the end (step ${pausedAt})`);

    const store = path.join(cluster.dir, '.data', 'checkpoints');
    const away = path.join(cluster.dir, '.data', 'checkpoints-away');
    fs.renameSync(store, away);
    fs.writeFileSync(store, 'not a directory');
    assert.equal(cli(cluster, ['resume', 'outage']).code, 0);

    // The chunk fails on the storage and is retried (not failed, not sent to a fallback).
    const failure = await waitFor(
      'a retried chunk that names the storage',
      async () => {
        const d = await handle.describe();
        const pending = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'trainChunk');
        return (pending?.attempt ?? 0) >= 3 ? (pending?.lastFailure?.message ?? '') : null;
      },
      120_000,
      100,
    );
    assert.match(failure, /storage unavailable/, failure);
    assert.doesNotMatch(failure, /no valid earlier checkpoint|damaged/);
    assert.equal((await handle.describe()).status.name, 'RUNNING');

    fs.rmSync(store);
    fs.renameSync(away, store);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 160);
    assert.equal(result.weightsSha256, reference.weightsSha256, 'same weights as the undisturbed run');
    const progress = await handle.query(progressQuery);
    assert.ok(
      progress.recoveries.every((r) => !/damaged/.test(r.reason)),
      `no damaged-checkpoint fallback: ${JSON.stringify(progress.recoveries)}`,
    );
    const verify = cli(cluster, ['checkpoints', 'verify', 'outage']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });
});
