// Monitoring: the worker's Prometheus metrics, and `health`, which alerts on damaged or stale checkpoints.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { progressQuery } from '../../workflows/definitions';
import {
  cli,
  spawnWorker,
  startCluster,
  waitFor,
  writeSpec,
  type TestCluster,
  type WorkerProcess,
} from '../helpers/cluster';

const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 600, testLimit: 200 },
  epochs: 2,
  batchSize: 50,
  chunkSteps: 5,
  seed: 8,
  optimizer: { name: 'adam', learningRate: 0.003 },
  checkpoint: { storage: 'file://.data/checkpoints' },
};

describe('monitoring: metrics and health alerts (real dev server, real worker)', function () {
  this.timeout(300_000);
  let cluster: TestCluster;
  const workers: WorkerProcess[] = [];

  before(async function () {
    cluster = await startCluster();
  });
  after(async function () {
    for (const w of workers) await w.kill('SIGKILL');
    await cluster?.close();
  });

  it('the worker exports commit counts and the newest checkpoint; health is ok, then alerts on a damaged checkpoint', async function () {
    const port = await freePort();
    const w = spawnWorker(cluster, { env: { DURABLE_TRAIN_METRICS_PORT: String(port) } });
    workers.push(w);
    await w.ready;
    assert.match(w.output(), new RegExp(`metrics on http://127\\.0\\.0\\.1:${port}/metrics`));
    const r = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 's.json', spec),
      '--run-id',
      'm1',
      '--wait',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);

    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const commits = /durable_train_checkpoint_commits_total\{run="m1",reason="chunk-end"\} (\d+)/.exec(text);
    assert.ok(commits && Number(commits[1]) === 5, text);
    assert.match(text, /durable_train_last_checkpoint_step\{run="m1"\} 24/);
    assert.match(text, /# TYPE durable_train_last_checkpoint_timestamp_seconds gauge/);
    assert.doesNotMatch(text, /durable_train_checkpoint_failures_total\{run="m1"\} [1-9]/);

    const ok = cli(cluster, ['health', 'm1', '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(ok.json<{ ok: boolean }>().ok, true);

    const dir = path.join(cluster.dir, '.data', 'checkpoints', 'm1');
    const newest = fs.readdirSync(path.join(dir, 'manifests')).sort().pop()!;
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifests', newest), 'utf8'));
    const blob = manifest.blobs.find((b: { name: string }) => b.name.startsWith('model/'));
    fs.writeFileSync(path.join(dir, 'blobs', blob.sha256), Buffer.alloc(blob.size));
    const bad = cli(cluster, ['health', 'm1']);
    assert.equal(bad.code, 1, bad.stdout);
    assert.match(bad.stdout, new RegExp(`newest checkpoint ${manifest.id} is damaged: ${blob.name}`));
  });

  it('health alerts when a running run stops committing (the worker that ran it died)', async function () {
    const w = spawnWorker(cluster);
    workers.push(w);
    await w.ready;
    const long = {
      ...spec,
      dataset: { name: 'mnist', trainLimit: 20000, testLimit: 200 },
      batchSize: 10,
      chunkSteps: 500,
    };
    assert.equal(cli(cluster, ['start', '--spec', writeSpec(cluster.dir, 'l.json', long), '--run-id', 'm2']).code, 0);
    const handle = cluster.client.workflow.getHandle('m2');
    await waitFor(
      'a checkpoint',
      async () => ((await handle.query(progressQuery)).lastCheckpoint?.step ?? 0) > 0,
      120_000,
      100,
    );
    assert.equal(cli(cluster, ['health', 'm2', '--max-age', '60']).code, 0);
    await w.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 4000));
    const h = cli(cluster, ['health', 'm2', '--max-age', '2', '--json']);
    assert.equal(h.code, 1, h.stdout);
    const report = h.json<{ ok: boolean; alerts: string[] }>();
    assert.ok(
      report.alerts.some((a) => /^stale: newest checkpoint step-\d+-[0-9a-f]+ is \d+s old \(max 2s\)$/.test(a)),
      JSON.stringify(report),
    );
    await handle.terminate('test done');
  });
});
