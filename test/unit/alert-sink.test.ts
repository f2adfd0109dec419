// The alert sink against a real HTTP server in the test: the payload, duplicates suppressed until the condition
// clears, retries with backoff, a dead webhook counted and logged (never thrown); the worker-side triggers
// (save failures in a row, stale checkpoints); per-run metric series removed when a run ends.
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RunAlerts } from '../../activities/chunk/alerts';
import { AlertSink, webhookFromEnv } from '../../telemetry/alerts';
import { TrainingMetrics } from '../../telemetry/metrics';
import { parseScrape } from '../helpers/prom-scrape';

interface Receiver {
  url: string;
  bodies: Array<Record<string, unknown>>;
  /** When each request arrived (performance.now(), ms), delivered or not. */
  arrivals: number[];
  /** Status codes to answer, in order; then 200. */
  failWith: number[];
  close(): Promise<void>;
}

async function receiver(): Promise<Receiver> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      r.arrivals.push(performance.now());
      const status = r.failWith.shift() ?? 200;
      if (status === 200) r.bodies.push(JSON.parse(body) as Record<string, unknown>);
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const r: Receiver = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies: [],
    arrivals: [],
    failWith: [],
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return r;
}

const quiet = () => undefined;

/**
 * A sink that keeps every delivery the watcher starts (RunAlerts notifies synchronously, fire and forget): the test
 * counts the alerts raised right after the call that raises them, and awaits their deliveries instead of sleeping.
 */
class RecordingSink extends AlertSink {
  readonly raised: Array<Promise<unknown>> = [];
  override notify(alert: Parameters<AlertSink['notify']>[0]): void {
    this.raised.push(this.send(alert));
  }
  /** All deliveries started so far have ended (delivered, suppressed or given up). */
  settled(): Promise<unknown> {
    return Promise.all(this.raised);
  }
}

describe('alert sink (real HTTP receiver)', function () {
  let rx: Receiver;
  let metrics: TrainingMetrics;
  beforeEach(async function () {
    rx = await receiver();
    metrics = new TrainingMetrics({ defaultMetrics: false });
  });
  afterEach(async function () {
    await rx.close();
  });

  it('posts Slack-compatible text plus structured fields; a duplicate is suppressed until cleared', async function () {
    const sink = new AlertSink({ url: rx.url, counters: metrics, log: quiet });
    const alert = {
      kind: 'save-failing' as const,
      runId: 'r1',
      checkpointId: 'c1',
      message: 'saves fail',
      details: { n: 3 },
    };
    assert.deepEqual(await sink.send(alert), { delivered: true, suppressed: false });
    assert.equal((await sink.send(alert)).suppressed, true);
    assert.equal(rx.bodies.length, 1);
    const b = rx.bodies[0];
    assert.match(String(b.text), /save-failing: run r1 \(checkpoint c1\): saves fail/);
    assert.deepEqual([b.kind, b.runId, b.checkpointId, b.details], ['save-failing', 'r1', 'c1', { n: 3 }]);
    sink.clear('save-failing', 'r1');
    assert.equal((await sink.send(alert)).delivered, true);
    assert.equal(rx.bodies.length, 2);
    const s = parseScrape(await metrics.text());
    assert.equal(s.value('durable_train_alerts_total', { kind: 'save-failing', outcome: 'delivered' }), 2);
    assert.equal(s.value('durable_train_alerts_total', { kind: 'save-failing', outcome: 'suppressed' }), 1);
  });

  it('retries a failing webhook with backoff; a dead one is counted and logged, never thrown', async function () {
    const logged: string[] = [];
    const sink = new AlertSink({
      url: rx.url,
      counters: metrics,
      attempts: 3,
      backoffMs: 100,
      log: (level, message) => logged.push(`${level} ${message}`),
    });
    rx.failWith = [503, 500];
    const ok = await sink.send({ kind: 'run-failed', runId: 'r2', message: 'boom' });
    assert.equal(ok.delivered, true);
    assert.equal(rx.bodies.length, 1);
    // Three requests, the waits between them at least the backoff, doubling (100 ms, then 200 ms). A timer never fires
    // early (up to a millisecond of rounding), so these lower bounds hold on any machine, however loaded.
    assert.equal(rx.arrivals.length, 3);
    const gaps = [rx.arrivals[1] - rx.arrivals[0], rx.arrivals[2] - rx.arrivals[1]];
    assert.ok(gaps[0] >= 98 && gaps[1] >= 198, `waits between attempts ${gaps.map((g) => g.toFixed(1)).join(', ')} ms`);

    const dead = new AlertSink({
      url: 'http://127.0.0.1:1/hook',
      counters: metrics,
      attempts: 2,
      backoffMs: 10,
      log: (l, m) => logged.push(`${l} ${m}`),
    });
    const r = await dead.send({ kind: 'drill-failed', runId: 'r3', checkpointId: 'c9', message: 'differs' });
    assert.equal(r.delivered, false);
    assert.match(r.reason ?? '', /webhook unreachable/);
    assert.ok(
      logged.some((l) => /^error alert delivery failed \(attempt 2\/2\)/.test(l)),
      logged.join('\n'),
    );
    const s = parseScrape(await metrics.text());
    assert.equal(s.value('durable_train_alert_delivery_failures_total', { kind: 'run-failed' }), 2);
    assert.equal(s.value('durable_train_alert_delivery_failures_total', { kind: 'drill-failed' }), 2);

    rx.failWith = [400];
    const refused = await sink.send({ kind: 'damaged-fallback', runId: 'r4', checkpointId: 'c1', message: 'x' });
    assert.deepEqual([refused.delivered, refused.permanent], [false, true], 'a 4xx is not retried');
  });

  it('no webhook: logged once and counted as no-sink; a bad URL is refused naming the variable', async function () {
    const logged: string[] = [];
    const sink = new AlertSink({ url: null, counters: metrics, log: (_, m) => logged.push(m) });
    assert.deepEqual(await sink.send({ kind: 'run-failed', runId: 'r', message: 'm' }), {
      delivered: false,
      suppressed: false,
      reason: 'no-sink',
    });
    assert.equal((await sink.send({ kind: 'run-failed', runId: 'r', message: 'm' })).suppressed, true);
    assert.equal(logged.length, 1, 'a repeated condition is not logged again');
    assert.throws(() => webhookFromEnv({ DURABLE_TRAIN_ALERT_WEBHOOK: 'ftp://x/y' }), /DURABLE_TRAIN_ALERT_WEBHOOK/);
    assert.equal(webhookFromEnv({}), null);
  });

  it('save-failing: one alert after N storage failures in a row, again only after a commit cleared it', async function () {
    const sink = new RecordingSink({ url: rx.url, log: quiet });
    const alerts = new RunAlerts(sink, { saveFailures: 3, staleSeconds: 3600 });
    alerts.chunkStarted('r', 'c1');
    alerts.storageFailed('r', 'c1', 'ENOTDIR');
    alerts.storageFailed('r', 'c1', 'ENOTDIR');
    assert.equal(sink.raised.length, 0, 'two failures are below the threshold');
    for (let i = 0; i < 4; i++) alerts.storageFailed('r', 'c1', 'ENOTDIR');
    await sink.settled();
    assert.equal(rx.bodies.length, 1, 'the failures after the third are duplicates of the open alert');
    alerts.committed('r', 'c2');
    alerts.storageFailed('r', 'c2', 'ENOTDIR');
    alerts.storageFailed('r', 'c2', 'ENOTDIR');
    await sink.settled();
    assert.equal(rx.bodies.length, 1, 'two failures after a commit are below the threshold');
    alerts.storageFailed('r', 'c2', 'ENOTDIR');
    await sink.settled();
    assert.deepEqual(
      rx.bodies.map((b) => [b.kind, b.checkpointId, (b.details as { failures: number }).failures]),
      [
        ['save-failing', 'c1', 3],
        ['save-failing', 'c2', 3],
      ],
    );
    alerts.chunkEnded('r', true);
  });

  it('checkpoint-stale: a run training here with no commit past the threshold alerts once', async function () {
    let now = 0;
    const sink = new RecordingSink({ url: rx.url, log: quiet });
    const alerts = new RunAlerts(sink, { saveFailures: 3, staleSeconds: 60 }, () => now);
    alerts.chunkStarted('s', 'c1');
    now = 59_000;
    alerts.checkStale();
    assert.equal(sink.raised.length, 0, 'not stale within the threshold');
    now = 61_000;
    alerts.checkStale();
    alerts.checkStale();
    assert.equal(sink.raised.length, 1, 'stale once: the second check raises nothing');
    await sink.settled();
    assert.equal(rx.bodies.length, 1);
    assert.deepEqual(
      [rx.bodies[0].kind, rx.bodies[0].runId, rx.bodies[0].checkpointId],
      ['checkpoint-stale', 's', 'c1'],
    );
    // A paused run (its chunk ended with the run not training on) is not watched.
    alerts.chunkEnded('s', true);
    now = 500_000;
    alerts.checkStale();
    assert.equal(sink.raised.length, 1, 'a run that ended is not watched');
    await sink.settled();
    assert.equal(rx.bodies.length, 1);
  });
});

describe('worker metrics (prom-client registry)', function () {
  it('histograms, counters by reason, and per-run gauges removed when the run ends', async function () {
    const m = new TrainingMetrics();
    m.committed('a', 5, 0.2, 1000, 'chunk-end');
    m.committed('a', 10, 0.3, 1500, 'time');
    m.committed('b', 5, 0.1, 900, 'chunk-end');
    m.progress('a', 10, 123);
    m.commitFailed('a', 'ENOTDIR');
    m.restored('a', 0.5);
    m.recovered('a', 'damaged-fallback');
    m.drillPassed();
    m.drillFailed();
    m.runEnded('a');
    const s = parseScrape(await m.text());
    assert.equal(s.type('durable_train_checkpoint_commit_seconds'), 'histogram');
    assert.equal(s.value('durable_train_checkpoint_commit_seconds_count'), 3);
    assert.ok(Math.abs(s.value('durable_train_checkpoint_commit_seconds_sum') - 0.6) < 1e-9);
    assert.equal(s.value('durable_train_checkpoint_restore_seconds_count'), 1);
    assert.equal(s.value('durable_train_checkpoint_commits_total', { reason: 'chunk-end' }), 2);
    assert.equal(s.value('durable_train_checkpoint_bytes_total'), 3400);
    assert.equal(s.value('durable_train_checkpoint_failures_total', { reason: 'ENOTDIR' }), 1);
    assert.equal(s.value('durable_train_recoveries_total', { kind: 'damaged-fallback' }), 1);
    assert.equal(s.value('durable_train_drills_total', { outcome: 'passed' }), 1);
    assert.equal(s.value('durable_train_drills_total', { outcome: 'failed' }), 1);
    assert.ok(s.value('durable_train_last_successful_drill_timestamp_seconds') > 1.7e9);
    assert.deepEqual(
      s.samples.filter((x) => x.labels.run === 'a'),
      [],
      'no series of the ended run',
    );
    assert.equal(s.value('durable_train_last_checkpoint_step', { run: 'b' }), 5);
    assert.ok(s.find('durable_train_nodejs_eventloop_lag_seconds').length === 1, 'event-loop metrics');
    assert.ok(s.value('durable_train_process_resident_memory_bytes') > 0, 'process metrics');
  });
});
