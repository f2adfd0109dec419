// Monitoring: the worker's Prometheus metrics, and `health`, which alerts on damaged or stale checkpoints.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { progressQuery } from '../../workflows/definitions';
import { cli, waitFor, writeSpec, type WorkerProcess } from '../helpers/cluster';
import { runningChunk, smallSpec, useCluster } from '../helpers/fixtures';

const spec = smallSpec({ seed: 8 });

describe('monitoring: metrics and health alerts (real dev server, real worker)', function () {
  this.timeout(300_000);
  // Each test's workers are killed after it: a worker left alive would serve the next test's queries and runs.
  const fx = useCluster();

  it('the worker exports commit counts and the newest checkpoint; health is ok, then alerts on a damaged checkpoint', async function () {
    const cluster = fx.cluster;
    // The port is chosen before the worker binds it: if another process takes it in between, the worker exits
    // with EADDRINUSE and we try another.
    let port = 0;
    let w: WorkerProcess | undefined;
    for (let attempt = 1; !w; attempt++) {
      port = await freePort();
      try {
        w = await fx.worker({ env: { DURABLE_TRAIN_METRICS_PORT: String(port) } });
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test(String(err))) throw err;
      }
    }
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
    const cluster = fx.cluster;
    const w = await fx.worker();
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
    // The worker we kill is the one running the run (and the only one on the queue).
    const chunk = await waitFor('the next chunk to run', () => runningChunk(handle), 60_000, 100);
    assert.ok(chunk.identity.startsWith(`${w.proc.pid}@`), `chunk on ${chunk.identity}, worker pid ${w.proc.pid}`);
    await w.kill('SIGKILL');
    const noWorker = /^no worker answers the progress query/;
    const stale = /^stale: newest checkpoint step-\d+-[0-9a-f]+ is \d+s old \(max 2s\)$/;
    const report = await waitFor(
      'health to alert on the dead worker and the stale checkpoint',
      async () => {
        const h = cli(cluster, ['health', 'm2', '--max-age', '2', '--json']);
        const r = h.json<{ ok: boolean; alerts: string[] }>();
        return h.code === 1 && r.alerts.some((a) => noWorker.test(a)) && r.alerts.some((a) => stale.test(a)) ? r : null;
      },
      60_000,
      500,
    );
    assert.equal(report.ok, false);
    await handle.terminate('test done');
  });
});
