// Monitoring: the worker's Prometheus metrics (scraped and parsed), the SDK's own, and `health`, which alerts on damaged
// or stale checkpoints.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { progressQuery } from '../../workflows/definitions';
import { cli, cliAsync, waitFor, writeSpec, type WorkerProcess } from '../helpers/cluster';
import { scrape } from '../helpers/prom-scrape';
import { runningChunk, smallSpec, useCluster } from '../helpers/fixtures';

const spec = smallSpec({ seed: 8 });

/** A webhook receiver in the test: the alerts posted to it. */
async function receiver() {
  const alerts: Array<{ kind: string; runId: string; checkpointId: string | null }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      alerts.push(JSON.parse(body) as (typeof alerts)[number]);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    alerts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('monitoring: metrics and health alerts (real dev server, real worker)', function () {
  this.timeout(300_000);
  // Each test's workers are killed after it: a worker left alive would serve the next test's queries and runs.
  const fx = useCluster();

  it('the worker exports parsed metrics (and the SDK its own); health alerts on a damaged checkpoint; a restart falls back past it', async function () {
    const cluster = fx.cluster;
    const rx = await receiver();
    // The ports are chosen before the worker binds them: if another process takes one in between, the worker exits
    // with EADDRINUSE (or the SDK's exporter fails to bind) and we try others.
    let port = 0;
    let sdkPort = 0;
    let w: WorkerProcess | undefined;
    for (let attempt = 1; !w; attempt++) {
      port = await freePort();
      sdkPort = await freePort();
      try {
        w = await fx.worker({
          env: {
            DURABLE_TRAIN_METRICS_PORT: String(port),
            DURABLE_TRAIN_SDK_METRICS_PORT: String(sdkPort),
            DURABLE_TRAIN_ALERT_WEBHOOK: rx.url,
          },
        });
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE|address/i.test(String(err))) throw err;
      }
    }
    const metricsUrl = `http://127.0.0.1:${port}/metrics`;
    // The worker says where it serves metrics once its servers listen (the training process may log first).
    const said = async (re: RegExp) => {
      for (let i = 0; i < 300 && !re.test(w.output()); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(w.output(), re);
    };
    await said(new RegExp(`metrics on http://127\\.0\\.0\\.1:${port}/metrics`));
    await said(new RegExp(`SDK metrics on http://127\\.0\\.0\\.1:${sdkPort}/metrics`));
    const specFile = writeSpec(cluster.dir, 's.json', spec);
    const r = cli(cluster, ['start', '--spec', specFile, '--run-id', 'm1', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr);

    const m = await scrape(metricsUrl);
    // 24 steps in chunks of 5: five chunk-end commits, each timed and sized.
    assert.equal(m.value('durable_train_checkpoint_commits_total', { reason: 'chunk-end' }), 5);
    assert.equal(m.type('durable_train_checkpoint_commit_seconds'), 'histogram');
    assert.equal(m.value('durable_train_checkpoint_commit_seconds_count'), 5);
    assert.ok(m.value('durable_train_checkpoint_commit_seconds_sum') > 0);
    // Bytes referenced by the committed checkpoints: every manifest of the run (this worker committed them all), each
    // counted once.
    const manifests = fx.manifests('m1') as Array<{ step: number; blobs: Array<{ size: number }> }>;
    assert.equal(manifests.length, 5);
    const bytes = manifests.reduce((n, man) => n + man.blobs.reduce((k, b) => k + b.size, 0), 0);
    assert.ok(bytes > 0);
    assert.equal(m.value('durable_train_checkpoint_bytes_total'), bytes);
    assert.equal(m.find('durable_train_checkpoint_failures_total').length, 0, 'no failed commit');
    assert.equal(m.type('durable_train_last_checkpoint_timestamp_seconds'), 'gauge');
    // The run ended: its per-run series are gone (label sets do not grow with every run ever trained).
    assert.deepEqual(
      m.samples.filter((x) => x.labels.run === 'm1'),
      [],
    );
    assert.ok(m.value('durable_train_process_resident_memory_bytes') > 0, 'process metrics');
    assert.equal(m.find('durable_train_nodejs_eventloop_lag_seconds').length, 1, 'event-loop metrics');
    // The Temporal SDK's worker metrics, on the second port.
    const sdk = await scrape(`http://127.0.0.1:${sdkPort}/metrics`);
    assert.ok(
      sdk.find('temporal_activity_execution_latency_count', { activity_type: 'trainChunk' }).some((x) => x.value >= 5),
      sdk.text,
    );

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

    // Started again, the run falls back past the damaged checkpoint: counted, and one alert names it.
    const again = await cliAsync(cluster, ['start', '--spec', specFile, '--run-id', 'm1', '--wait', '--json']);
    assert.equal(again.code, 0, again.stderr);
    // The alert is sent without blocking training: scrape once the worker has counted its delivery.
    const after = await waitFor('the damaged-fallback alert counted as delivered', async () => {
      const sc = await scrape(metricsUrl);
      return sc.find('durable_train_alerts_total', { kind: 'damaged-fallback', outcome: 'delivered' }).length
        ? sc
        : null;
    });
    assert.equal(after.value('durable_train_recoveries_total', { kind: 'damaged-fallback' }), 1);
    assert.equal(rx.alerts.filter((a) => a.kind === 'damaged-fallback').length, 1, 'one alert names it');
    const alert = rx.alerts.find((a) => a.kind === 'damaged-fallback')!;
    assert.deepEqual([alert.runId, alert.checkpointId], ['m1', manifest.id]);
    assert.equal(after.value('durable_train_alerts_total', { kind: 'damaged-fallback', outcome: 'delivered' }), 1);
    await rx.close();
  });

  it('health alerts when a running run stops committing (the worker that ran it died)', async function () {
    const cluster = fx.cluster;
    const w = await fx.worker();
    const long = {
      ...spec,
      dataset: { name: 'mnist', trainLimit: 20000, testLimit: 200, validationFraction: 0 },
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
