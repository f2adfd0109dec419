// Promises the README makes that no other test checks, each against a real dev server and real workers.
// Runs nobody steers (references, finished runs to inspect) train on one unpaced worker of the block, on a task queue
// of their own; runs a test steers or kills get workers of their own on the cluster's queue. The CLI runs in this
// process (cliIn) except `watch`, which is followed as a process.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { temporal } from '@temporalio/proto';
import { freePort } from '../../cli/dev-server';
import type { WorkflowHandle } from '@temporalio/client';
import { progressQuery, TRAINING_WORKFLOW } from '../../workflows/definitions';
import { validateSpec } from '../../spec';
import { withRunDefaults } from '../../spec/helpers';
import type { RunResult } from '../../workflows/progress';
import { cliAsync, tmpDir, waitFor, writeSpec } from '../helpers/cluster';
import { cliIn } from '../helpers/cli-in-process';
import { runningChunk, smallSpec, useCluster } from '../helpers/fixtures';
import { scrape } from '../helpers/prom-scrape';

/** Attempt numbers of every activity task started in the run's latest execution, by activity type. */
async function startedAttempts(handle: WorkflowHandle): Promise<Array<[string, number]>> {
  const events = (await handle.fetchHistory()).events ?? [];
  const typeOf = new Map<string, string>();
  const out: Array<[string, number]> = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes) {
      typeOf.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    }
    if (e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) {
      const a = e.activityTaskStartedEventAttributes!;
      out.push([typeOf.get(String(a.scheduledEventId)) ?? '?', a.attempt ?? 0]);
    }
  }
  return out;
}

describe('promises of the README (real dev server, real workers)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  // The block's unpaced worker polls a task queue of its own: only runs started there (`plain`) reach it.
  const plain = () => ({ env: { DURABLE_TRAIN_TASK_QUEUE: `${fx.cluster.taskQueue}-plain` } });
  before(async function () {
    await fx.worker(plain());
  });

  it('set-lr applies from the next chunk and is recorded in the checkpoints’ schedule state', async function () {
    const cluster = fx.cluster;
    // Paced: each step 100 ms longer (same numbers), so a chunk of 30 steps runs for over 3 s and the update sent
    // early in the second chunk lands while it runs.
    await fx.worker({ paced: { stepMs: 100 } });
    const spec = smallSpec({
      dataset: { name: 'mnist', trainLimit: 6000, testLimit: 200, validationFraction: 0 },
      epochs: 1,
      chunkSteps: 30,
      checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 100 },
    });
    const file = writeSpec(cluster.dir, 'lr.json', spec);
    assert.equal((await cliIn(cluster, ['start', '--spec', file, '--run-id', 'lr'])).code, 0);
    const handle = cluster.client.workflow.getHandle('lr');
    // Early inside the second chunk (steps 30..60).
    const inFlight = await waitFor(
      'the second chunk to train',
      async () => {
        const c = await runningChunk(handle);
        return c && c.step !== null && c.step > 30 && c.step < 42 ? c : null;
      },
      120_000,
      20,
    );
    const r = await cliIn(cluster, ['set-lr', 'lr', '0.0005', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    const progress = await handle.query(progressQuery);
    assert.equal(progress.learningRateChanges.length, 1, JSON.stringify(progress.learningRateChanges));

    const chain = fx.manifests('lr').sort((a, b) => a.step - b.step);
    assert.deepEqual(
      chain.map((m) => m.step),
      [30, 60, 90, 120],
    );
    // The chunk in flight (30..60) finished at the old rate; the change starts at its end, step 60.
    const boundary = 60;
    assert.ok(inFlight.step! < boundary);
    for (const m of chain) {
      const schedule = m.state.schedule as { overrides: Array<{ step: number; learningRate: number }> };
      if (m.step <= boundary) {
        assert.equal(m.metrics.learningRate, 0.003, `${m.id} before the change`);
        assert.deepEqual(schedule.overrides, [], `${m.id} has no override yet`);
      } else {
        assert.equal(m.metrics.learningRate, 0.0005, `${m.id} after the change`);
        assert.equal(m.state.learningRate, 0.0005);
        assert.deepEqual(schedule.overrides, [{ step: boundary, learningRate: 0.0005 }], `${m.id} schedule state`);
      }
    }
  });

  it('weightsSha256 is sha256 over the exported final weights, names sorted, float32 little-endian', async function () {
    const cluster = fx.cluster;
    const file = writeSpec(cluster.dir, 'sha.json', smallSpec());
    const r = await cliIn(cluster, ['start', '--spec', file, '--run-id', 'sha', '--wait', '--json'], plain());
    assert.equal(r.code, 0, r.stderr);
    const result = r.json<{ result: RunResult }>().result;
    const out = path.join(cluster.dir, 'sha-export');
    const ex = await cliIn(cluster, ['export', 'sha', '--out', out]);
    assert.equal(ex.code, 0, ex.stderr);
    const model = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')) as {
      weightsManifest: Array<{ paths: string[]; weights: Array<{ name: string; shape: number[]; dtype: string }> }>;
    };
    const bin = fs.readFileSync(path.join(out, 'weights.bin'));
    const weights: Array<{ name: string; bytes: Buffer }> = [];
    let offset = 0;
    for (const w of model.weightsManifest.flatMap((g) => g.weights)) {
      assert.equal(w.dtype, 'float32', w.name);
      const size = 4 * w.shape.reduce((a, b) => a * b, 1);
      weights.push({ name: w.name, bytes: bin.subarray(offset, offset + size) });
      offset += size;
    }
    assert.equal(offset, bin.length, 'the manifest describes every byte of weights.bin');
    // weights.bin is little-endian float32 by the TF.js format; hash in name order.
    const h = createHash('sha256');
    for (const w of weights.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) h.update(w.bytes);
    assert.equal(h.digest('hex'), result.weightsSha256);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`a worker stopped with ${signal} commits the running chunk at its current step; nothing is recomputed`, async function () {
      const cluster = fx.cluster;
      const spec = smallSpec({
        dataset: { name: 'mnist', trainLimit: 2000, testLimit: 200, validationFraction: 0 },
        epochs: 1,
        chunkSteps: 40,
        checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 100 },
      });
      const file = writeSpec(cluster.dir, `sig-${signal}.json`, spec);
      const ref = `sig-ref-${signal}`;
      // The reference trains on the block's worker while this test's paced worker starts.
      const refRun = await cliIn(cluster, ['start', '--spec', file, '--run-id', ref], plain());
      assert.equal(refRun.code, 0, refRun.stderr);
      const reference = cluster.client.workflow.getHandle(ref).result() as Promise<RunResult>;
      reference.catch(() => undefined);

      // Paced: each step 100 ms longer (same numbers), so the one chunk of 40 steps runs for over 4 s.
      const w = await fx.worker({ paced: { stepMs: 100 } });
      const runId = `sig-${signal}`;
      assert.equal((await cliIn(cluster, ['start', '--spec', file, '--run-id', runId])).code, 0);
      const handle = cluster.client.workflow.getHandle(runId);
      const seen = await waitFor(
        'the chunk to report step 10',
        async () => {
          const c = await runningChunk(handle);
          return c && c.step !== null && c.step >= 10 ? c : null;
        },
        120_000,
        20,
      );
      await w.kill(signal);
      assert.equal(w.proc.signalCode, null, `the worker exited by itself on ${signal}: ${w.output()}`);
      const cut = fx.manifests(runId);
      assert.equal(cut.length, 1, JSON.stringify(cut.map((m) => [m.step, m.reason])));
      assert.equal(cut[0].reason, 'worker-shutdown');
      assert.ok(cut[0].step >= seen.step! && cut[0].step < 40, `committed at ${cut[0].step}, ${seen.step} seen`);

      await fx.worker();
      const result = (await handle.result()) as RunResult;
      assert.equal(result.weightsSha256, (await reference).weightsSha256, 'the stopped and continued run is exact');
      const chain = fx.manifests(runId).sort((a, b) => a.step - b.step);
      assert.equal(chain[1].parent?.id, cut[0].id, 'training continued from the shutdown checkpoint');
    });
  }

  it('checkpoint.everySeconds commits inside a chunk; a SIGKILLed chunk resumes from the newest of them', async function () {
    const cluster = fx.cluster;
    const spec = smallSpec({
      dataset: { name: 'mnist', trainLimit: 3000, testLimit: 200, validationFraction: 0 },
      epochs: 1,
      chunkSteps: 60,
      checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 100, everySeconds: 1 },
    });
    const file = writeSpec(cluster.dir, 'every.json', spec);
    // The reference trains on the block's worker while this test's paced worker starts.
    const refRun = await cliIn(cluster, ['start', '--spec', file, '--run-id', 'every-ref'], plain());
    assert.equal(refRun.code, 0, refRun.stderr);
    const reference = cluster.client.workflow.getHandle('every-ref').result() as Promise<RunResult>;
    reference.catch(() => undefined);

    // Paced: each step 100 ms longer (same numbers): the one chunk of 60 steps runs for over 6 s, so time commits
    // (at most 1 s apart) happen inside it.
    const w = await fx.worker({ paced: { stepMs: 100 } });
    assert.equal((await cliIn(cluster, ['start', '--spec', file, '--run-id', 'every'])).code, 0);
    const handle = cluster.client.workflow.getHandle('every');
    const timeCommits = () =>
      fs.existsSync(path.join(cluster.dir, '.data', 'checkpoints', 'every', 'manifests'))
        ? fx.manifests('every').filter((m) => m.reason === 'time')
        : [];
    await waitFor('two time commits', async () => timeCommits().length >= 2, 120_000, 50);
    await w.kill('SIGKILL');
    const before = timeCommits().sort((a, b) => b.step - a.step);
    assert.ok(before[0].step < 60, `time commits inside the chunk: ${before.map((m) => m.step)}`);

    await fx.worker();
    const result = (await handle.result()) as RunResult;
    assert.equal(result.weightsSha256, (await reference).weightsSha256);
    const progress = await handle.query(progressQuery);
    const rec = progress.recoveries.find((r) => r.attempt >= 2);
    assert.ok(rec, JSON.stringify(progress.recoveries));
    // At most the steps since the newest time commit are lost: the retry restored the newest checkpoint there was.
    const newestAtKill = fx
      .manifests('every')
      .filter((m) => m.step <= before[0].step || m.id === before[0].id)
      .sort((a, b) => b.step - a.step)[0];
    assert.equal(rec.restoredFrom, newestAtKill.id, `restored ${rec.restoredFrom}, newest was ${newestAtKill.id}`);
  });

  it('the documented metrics: commits by reason, commit seconds, bytes, live per-run series, recoveries by kind', async function () {
    const cluster = fx.cluster;
    // A worker on a metrics port; the port is chosen before the worker binds it, so retry on EADDRINUSE.
    const metricsWorker = async (paced?: { stepMs: number }) => {
      for (let attempt = 1; ; attempt++) {
        const port = await freePort();
        try {
          const w = await fx.worker({ env: { DURABLE_TRAIN_METRICS_PORT: String(port) }, paced });
          return { w, port };
        } catch (err) {
          if (attempt >= 3 || !/EADDRINUSE/.test(String(err))) throw err;
        }
      }
    };
    const scrapeOf = (port: number) => scrape(`http://127.0.0.1:${port}/metrics`);
    const spec = smallSpec({
      dataset: { name: 'mnist', trainLimit: 2000, testLimit: 200, validationFraction: 0 },
      epochs: 1,
      chunkSteps: 20,
      checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 100 },
    });
    // Paced (each step 100 ms longer, same numbers): the kill after a heartbeat at step 25 lands in chunk 20..40.
    const a = await metricsWorker({ stepMs: 100 });
    assert.equal(
      (await cliIn(cluster, ['start', '--spec', writeSpec(cluster.dir, 'met.json', spec), '--run-id', 'met'])).code,
      0,
    );
    const handle = cluster.client.workflow.getHandle('met');
    await waitFor(
      'a heartbeat at step 25 or later',
      async () => {
        const c = await runningChunk(handle);
        return c && c.step !== null && c.step >= 25;
      },
      120_000,
      20,
    );
    // While the run trains on worker a: its first chunk's commit, and the run's live series.
    const before = await scrapeOf(a.port);
    assert.equal(before.value('durable_train_checkpoint_commits_total', { reason: 'chunk-end' }), 1, before.text);
    assert.ok(before.value('durable_train_step', { run: 'met' }) >= 25, before.text);
    assert.ok(before.value('durable_train_samples_per_second', { run: 'met' }) > 0, before.text);
    assert.equal(before.value('durable_train_last_checkpoint_step', { run: 'met' }), 20, before.text);
    await a.w.kill('SIGKILL');

    const b = await metricsWorker();
    const result = (await handle.result()) as RunResult;
    assert.equal(result.step, 40);
    // Worker b retried the killed chunk and committed its end: one retry, one commit with its time and bytes.
    const text = await scrapeOf(b.port);
    const newest = fx.manifests('met').sort((x, y) => y.step - x.step)[0];
    assert.equal(text.value('durable_train_recoveries_total', { kind: 'retry' }), 1, text.text);
    assert.equal(text.value('durable_train_checkpoint_commits_total', { reason: 'chunk-end' }), 1, text.text);
    assert.equal(text.value('durable_train_checkpoint_commit_seconds_count'), 1, text.text);
    assert.ok(text.value('durable_train_checkpoint_commit_seconds_sum') > 0, text.text);
    assert.equal(
      text.value('durable_train_checkpoint_bytes_total'),
      (newest.blobs as Array<{ size: number }>).reduce((n, x) => n + x.size, 0),
      text.text,
    );
    assert.equal(text.find('durable_train_checkpoint_failures_total').length, 0, 'no failed commit');
    // The run has ended: its per-run series are gone (label sets do not grow with every run a worker ever trained).
    assert.deepEqual(
      text.samples.filter((x) => x.labels.run === 'met'),
      [],
      'no series of the finished run',
    );
  });

  it('watch follows a run to its end; --storage reads its checkpoints from another directory', async function () {
    const cluster = fx.cluster;
    // Started before any worker polls its queue: the watch process sees it running whatever its start-up takes, and
    // only then does a worker come to train it.
    const file = writeSpec(cluster.dir, 'watch.json', smallSpec());
    assert.equal((await cliIn(cluster, ['start', '--spec', file, '--run-id', 'watched'])).code, 0);
    let seenRunning!: () => void;
    const running = new Promise<void>((resolve) => (seenRunning = resolve));
    const watching = cliAsync(cluster, ['watch', 'watched', '--json'], {
      onStdout: (out) => {
        if (out.includes('"status":"RUNNING"')) seenRunning();
      },
    });
    await Promise.race([running, watching]);
    await fx.worker();
    const watched = await watching;
    assert.equal(watched.code, 0, watched.stderr);
    const lines = watched.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { status?: string; result?: RunResult });
    const last = lines[lines.length - 1];
    assert.equal(last.result?.status, 'completed', watched.stdout);
    assert.equal(last.result?.step, 24);
    assert.ok(
      lines.some((l) => l.status === 'RUNNING'),
      `progress lines while it ran: ${watched.stdout}`,
    );

    // The spec's storage is relative to the worker's directory; from elsewhere, --storage names it.
    const elsewhere = tmpDir();
    const storage = `file://${path.join(cluster.dir, '.data', 'checkpoints')}`;
    const list = await cliIn(cluster, ['checkpoints', 'list', 'watched', '--storage', storage, '--json'], {
      cwd: elsewhere,
    });
    assert.equal(list.code, 0, list.stderr);
    const ids = list.json<Array<{ id: string }>>().map((c) => c.id);
    assert.deepEqual(
      ids,
      fx
        .manifests('watched')
        .map((m) => m.id)
        .sort(),
    );
    assert.ok(ids.includes(last.result!.lastCheckpoint!.id));
  });

  it('resume refusals: `start` refuses before anything starts; a workflow started anyway fails in one attempt', async function () {
    const cluster = fx.cluster;
    // Paced so the stop after the first checkpoint lands before the run could finish.
    await fx.worker({ paced: { stepMs: 200 } });
    const spec = smallSpec();
    assert.equal(
      (await cliIn(cluster, ['start', '--spec', writeSpec(cluster.dir, 'g.json', spec), '--run-id', 'g'])).code,
      0,
    );
    const handle = cluster.client.workflow.getHandle('g');
    await waitFor('a checkpoint', async () => ((await handle.query(progressQuery)).lastCheckpoint?.step ?? 0) > 0);
    assert.equal((await cliIn(cluster, ['stop', 'g'])).code, 0);
    assert.equal(((await handle.result()) as RunResult).status, 'stopped');

    const cases: Array<[string, object, RegExp]> = [
      ['different data', { ...spec, dataset: { ...spec.dataset, testLimit: 100 } }, /different data/],
      ['a different batch size', { ...spec, batchSize: 40 }, /batchSize cannot change/],
    ];
    for (const [what, changed, message] of cases) {
      const r = await cliIn(cluster, [
        'start',
        '--spec',
        writeSpec(cluster.dir, 'g2.json', changed),
        '--run-id',
        'g',
        '--wait',
      ]);
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.match(r.stderr, message, what);
      const kept = (await cliIn(cluster, ['status', 'g', '--json'])).json<{ status: string; workflowStatus: string }>();
      assert.deepEqual([kept.status, kept.workflowStatus], ['stopped', 'COMPLETED'], `${what}: the run is as it was`);
    }
    // A program that starts the workflow itself meets the same guards in the worker, in one attempt each.
    for (const [what, changed, message] of cases) {
      const input = { spec: withRunDefaults(validateSpec(changed)), from: null, searchAttributes: false };
      const started = await cluster.client.workflow.start(TRAINING_WORKFLOW, {
        workflowId: 'g',
        taskQueue: cluster.taskQueue,
        args: [input],
      });
      await assert.rejects(started.result(), what);
      const st = (await cliIn(cluster, ['status', 'g', '--json'])).json<{ workflowStatus: string; failure: string }>();
      assert.equal(st.workflowStatus, 'FAILED', what);
      assert.match(st.failure, message, what);
      const attempts = await startedAttempts(cluster.client.workflow.getHandle('g'));
      assert.ok(attempts.length > 0, what);
      assert.deepEqual(
        attempts.filter(([, n]) => n !== 1),
        [],
        `${what}: every activity ran once: ${JSON.stringify(attempts)}`,
      );
    }
  });

  it('keepBest keeps the best checkpoints by test accuracy in a real run', async function () {
    const cluster = fx.cluster;
    // One chunk per epoch, so every checkpoint is taken at an evaluation and carries its test accuracy.
    const spec = smallSpec({
      epochs: 5,
      chunkSteps: 12,
      optimizer: { name: 'sgd', learningRate: 0.05 },
      checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 1, keepBest: { k: 2, metric: 'accuracy' } },
    });
    const r = await cliIn(
      cluster,
      ['start', '--spec', writeSpec(cluster.dir, 'best.json', spec), '--run-id', 'best', '--wait'],
      plain(),
    );
    assert.equal(r.code, 0, r.stderr);
    const kept = fx.manifests('best').sort((a, b) => a.step - b.step);
    const newest = kept[kept.length - 1];
    assert.equal(newest.step, 60);
    const evals = newest.state.metrics.evals as Array<{ step: number; accuracy: number }>;
    assert.deepEqual(
      evals.map((e) => e.step),
      [12, 24, 36, 48, 60],
    );
    // Best first; on a tie the older one.
    const best = [...evals].sort((a, b) => b.accuracy - a.accuracy || a.step - b.step).slice(0, 2);
    const expected = [...new Set([...best.map((e) => e.step), 60])].sort((a, b) => a - b);
    assert.deepEqual(
      kept.map((m) => m.step),
      expected,
      `evals ${JSON.stringify(evals)}`,
    );
    for (const m of kept) {
      const e = evals.find((x) => x.step === m.step)!;
      assert.equal(m.metrics.testAccuracy, e.accuracy, `${m.id} carries its test accuracy`);
    }
  });

  it('a checkpoint of an unknown formatVersion is refused, naming the version', async function () {
    const cluster = fx.cluster;
    const file = writeSpec(cluster.dir, 'fv.json', smallSpec());
    assert.equal((await cliIn(cluster, ['start', '--spec', file, '--run-id', 'fv', '--wait'], plain())).code, 0);
    const dir = path.join(cluster.dir, '.data', 'checkpoints', 'fv', 'manifests');
    const newestFile = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .pop()!;
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, newestFile), 'utf8'));
    fs.writeFileSync(path.join(dir, newestFile), JSON.stringify({ ...manifest, formatVersion: 99 }));

    const verify = await cliIn(cluster, ['checkpoints', 'verify', 'fv', manifest.id]);
    assert.equal(verify.code, 1, verify.stdout + verify.stderr);
    assert.match(verify.stdout + verify.stderr, /unsupported formatVersion 99/);
    const fork = await cliIn(cluster, ['fork', '--from', `fv:${manifest.id}`, '--run-id', 'fv-fork'], plain());
    assert.notEqual(fork.code, 0, fork.stdout);
    assert.match(fork.stderr, /unsupported formatVersion 99/);
  });
});
