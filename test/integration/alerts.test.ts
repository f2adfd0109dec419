// Alerts that reach a person (real dev server, real worker processes, a real HTTP receiver in the test): storage that
// fails mid-run sends exactly one 'save-failing' alert, commits nothing damaged, and the run ends with the weights of
// an undisturbed run once storage returns; a run that fails sends one 'run-failed' alert. The worker's metrics are
// scraped and parsed along the way.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, cliAsync, waitFor, writeSpec, type WorkerProcess } from '../helpers/cluster';
import { chunkProgressed, smallSpec, useCluster, type ClusterFixture } from '../helpers/fixtures';
import { scrape } from '../helpers/prom-scrape';

interface AlertBody {
  text: string;
  kind: string;
  runId: string;
  checkpointId: string | null;
  details: Record<string, unknown>;
}

/** A webhook receiver: records every alert posted to it. */
async function receiver(): Promise<{ url: string; alerts: AlertBody[]; close(): Promise<void> }> {
  const alerts: AlertBody[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      alerts.push(JSON.parse(body) as AlertBody);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`,
    alerts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A worker with the webhook and a metrics port (retried on the rare port race). */
async function alertingWorker(
  fx: ClusterFixture,
  webhook: string,
  opts: { paced?: { stepMs: number } } = {},
): Promise<{ w: WorkerProcess; metricsUrl: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      const w = await fx.worker({
        env: { DURABLE_TRAIN_ALERT_WEBHOOK: webhook, DURABLE_TRAIN_METRICS_PORT: String(port) },
        ...opts,
      });
      return { w, metricsUrl: `http://127.0.0.1:${port}/metrics` };
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test(String(err))) throw err;
    }
  }
}

describe('alerts reach a webhook (real dev server, real worker, real HTTP receiver)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let rx: Awaited<ReturnType<typeof receiver>>;
  beforeEach(async function () {
    rx = await receiver();
  });
  afterEach(async function () {
    await rx.close();
  });

  it('storage fails mid-run: one save-failing alert, nothing damaged, then the undisturbed weights', async function () {
    const cluster = fx.cluster;
    const { w, metricsUrl } = await alertingWorker(fx, rx.url, { paced: { stepMs: 150 } });
    const specFile = writeSpec(cluster.dir, 's.json', smallSpec({ seed: 21 }));
    const ref = cli(cluster, ['start', '--spec', specFile, '--run-id', 'undisturbed', '--wait', '--json']);
    assert.equal(ref.code, 0, ref.stderr + w.output());
    const reference = ref.json<{ result: RunResult }>().result;

    assert.equal(cli(cluster, ['start', '--spec', specFile, '--run-id', 'outage']).code, 0);
    const handle = cluster.client.workflow.getHandle('outage');
    await waitFor('a first checkpoint', async () => (await handle.query(progressQuery)).lastCheckpoint, 120_000, 50);
    await chunkProgressed(handle, Date.now(), w);

    // Storage goes away under the training chunk: its commit fails, and so does every retry.
    const store = path.join(cluster.dir, '.data', 'checkpoints');
    const away = `${store}-away`;
    fs.renameSync(store, away);
    fs.writeFileSync(store, 'not a directory');
    await waitFor('the save-failing alert', async () => rx.alerts.some((a) => a.kind === 'save-failing'), 120_000, 50);
    // Keep failing a while longer: more failed attempts, still one alert.
    await waitFor(
      'two more failed attempts',
      async () => {
        const pending = (await handle.describe()).raw.pendingActivities?.find(
          (a) => a.activityType?.name === 'trainChunk',
        );
        return (pending?.attempt ?? 0) >= 6;
      },
      120_000,
      100,
    );
    const during = await scrape(metricsUrl);
    assert.ok(during.value('durable_train_checkpoint_failures_total', { reason: 'ENOTDIR' }) >= 1, during.text);
    assert.equal(during.value('durable_train_alerts_total', { kind: 'save-failing', outcome: 'delivered' }), 1);

    fs.rmSync(store);
    fs.renameSync(away, store);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.weightsSha256, reference.weightsSha256, 'same weights as the undisturbed run');

    const saves = rx.alerts.filter((a) => a.kind === 'save-failing');
    assert.equal(saves.length, 1, JSON.stringify(rx.alerts));
    assert.equal(saves[0].runId, 'outage');
    assert.match(saves[0].text, /save-failing: run outage .*failed 3 times in a row/);
    assert.ok(saves[0].checkpointId && /^step-\d+-/.test(saves[0].checkpointId), saves[0].checkpointId ?? 'null');
    assert.deepEqual(
      rx.alerts.map((a) => a.kind),
      ['save-failing'],
      'no other alert (no damaged fallback, no failed run)',
    );
    const verify = cli(cluster, ['checkpoints', 'verify', 'outage']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);

    const after = await scrape(metricsUrl);
    assert.equal(after.find('durable_train_last_checkpoint_step', { run: 'outage' }).length, 0, 'run series removed');
    assert.equal(after.find('durable_train_recoveries_total', { kind: 'damaged-fallback' }).length, 0);
  });

  it('a failed run sends one run-failed alert naming the run', async function () {
    const cluster = fx.cluster;
    const { metricsUrl } = await alertingWorker(fx, rx.url);
    // Storage under a regular file: refused at the run's start, which fails the run (not retried).
    fs.writeFileSync(path.join(cluster.dir, 'blocked'), 'a file, not a directory');
    const spec = smallSpec({ checkpoint: { storage: 'file://blocked/checkpoints' } });
    // Async: the receiver in this process must answer while the run fails (a sync CLI call would block it).
    const r = await cliAsync(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'f.json', spec),
      '--run-id',
      'doomed',
      '--wait',
    ]);
    assert.notEqual(r.code, 0, r.stdout);
    const alert = await waitFor('the run-failed alert', async () => rx.alerts.find((a) => a.kind === 'run-failed'));
    assert.equal(alert.runId, 'doomed');
    assert.match(alert.text, /run-failed: run doomed: run failed at step 0: .*not writable/);
    // No second alert can follow: the run is closed, its history holds one alert activity (completed: it returns
    // once the webhook answered), and the worker counted one alert of any kind and outcome in all.
    const history = await cluster.client.workflow.getHandle('doomed').fetchHistory();
    const events = history.events ?? [];
    assert.ok(
      events.some((e) => e.workflowExecutionFailedEventAttributes),
      'the run failed and is closed',
    );
    const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sendAlert');
    assert.equal(scheduled.length, 1);
    assert.ok(
      events.some(
        (e) => String(e.activityTaskCompletedEventAttributes?.scheduledEventId) === String(scheduled[0].eventId),
      ),
      'the alert activity completed',
    );
    const counted = (await scrape(metricsUrl)).find('durable_train_alerts_total');
    assert.deepEqual(
      counted.map((x) => [x.labels.kind, x.labels.outcome, x.value]),
      [['run-failed', 'delivered', 1]],
    );
    assert.equal(rx.alerts.length, 1, JSON.stringify(rx.alerts));
  });
});
