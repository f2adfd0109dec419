// A real durable run end to end: real dev server, real worker processes, the CLI as users run it.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateSpec } from '../../spec';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, tmpDir, waitFor, writeSpec, type TestCluster } from '../helpers/cluster';
import { FsCheckpointStore } from '../../checkpoint';
import { readMetricsLog } from '../../telemetry/metrics-log';
import { deterministicLog, runningChunk, smallSpec, useCluster } from '../helpers/fixtures';

const smallMlp = smallSpec({ checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 3 } });

describe('spec validation in `start` (nothing is started)', function () {
  const dir = tmpDir();
  // An address where nothing listens: validation must fail before any connection is tried.
  const env = { TEMPORAL_ADDRESS: '127.0.0.1:1' };
  const cases: Array<[string, object, RegExp]> = [
    ['unknown model', { ...smallMlp, model: 'resnet-9000' }, /model: unknown value "resnet-9000"/],
    [
      'negative learning rate',
      { ...smallMlp, optimizer: { name: 'adam', learningRate: -0.1 } },
      /optimizer\.learningRate: must be > 0/,
    ],
    ['missing field', (({ epochs: _e, ...rest }) => rest)(smallMlp), /epochs: missing required field/],
    ['unknown field', { ...smallMlp, epocs: 3 }, /epocs: unknown field/],
    ['zero chunkSeconds', { ...smallMlp, chunkSeconds: 0 }, /chunkSeconds: must be >= 1/],
    ['unknown layer to freeze', { ...smallMlp, freeze: ['conv1'] }, /freeze\[0\]: unknown layer "conv1" for mnist-mlp/],
    ['bad storage', { ...smallMlp, checkpoint: { storage: '/tmp/x' } }, /checkpoint\.storage: must be file:\/\/PATH/],
  ];
  for (const [name, spec, message] of cases) {
    it(`rejects ${name} with a message naming the field`, function () {
      const file = writeSpec(dir, `${name.replace(/\W/g, '-')}.json`, spec);
      const r = cli(null, ['start', '--spec', file], { cwd: dir, env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /cannot reach Temporal/);
    });
  }
  it('rejects a spec file that is not JSON', function () {
    const file = path.join(dir, 'broken.json');
    fs.writeFileSync(file, '{"model": ');
    const r = cli(null, ['start', '--spec', file], { cwd: dir, env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not valid JSON/);
  });
});

describe('a durable training run (real Temporal dev server, real worker processes)', function () {
  this.timeout(600_000);
  // Every test starts its own worker(s), killed after it: a worker left alive would take the next test's run.
  const fx = useCluster();
  let cluster: TestCluster;
  before(function () {
    cluster = fx.cluster;
  });

  it('runs a small spec to completion, with checkpoints on disk and progress in the query', async function () {
    const worker = await fx.worker();
    const file = writeSpec(cluster.dir, 'small.json', smallMlp);
    const r = cli(cluster, ['start', '--spec', file, '--run-id', 'small-1', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr + worker.output());
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 24); // 600/50 = 12 steps per epoch, 2 epochs
    assert.equal(result.totalSteps, 24);
    assert.equal(result.epoch, 2);
    assert.match(result.weightsSha256 ?? '', /^[0-9a-f]{64}$/);
    assert.ok(result.accuracy !== null && result.accuracy > 0.6, `test accuracy ${result.accuracy}`);
    assert.ok(result.loss !== null && result.loss > 0);
    assert.equal(result.chunks, 5); // 24 steps in chunks of 5: 5+5+5+5+4

    // Checkpoints on disk: manifests, blobs whose hashes match, retention kept the newest 3.
    const root = path.join(cluster.dir, '.data', 'checkpoints', 'small-1');
    const manifests = fs.readdirSync(path.join(root, 'manifests')).filter((f) => f.endsWith('.json'));
    assert.equal(manifests.length, 3, manifests.join(','));
    const steps = manifests
      .map((f) => JSON.parse(fs.readFileSync(path.join(root, 'manifests', f), 'utf8')).step as number)
      .sort((a, b) => a - b);
    assert.deepEqual(steps, [15, 20, 24]);
    const last = JSON.parse(
      fs.readFileSync(
        path.join(
          root,
          'manifests',
          manifests.find((f) => f.includes('000000024'))!,
        ),
        'utf8',
      ),
    );
    assert.equal(last.id, result.lastCheckpoint?.id);
    for (const b of last.blobs as Array<{ name: string; sha256: string; size: number }>) {
      const bytes = fs.readFileSync(path.join(root, 'blobs', b.sha256));
      assert.equal(bytes.length, b.size, b.name);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), b.sha256, b.name);
    }
    const names = (last.blobs as Array<{ name: string }>).map((b) => b.name);
    assert.ok(
      names.some((n) => n.startsWith('model/')),
      names.join(','),
    );
    assert.ok(
      names.some((n) => n.startsWith('opt/')),
      names.join(','),
    );

    // The CLI's views agree.
    const list = cli(cluster, ['checkpoints', 'list', 'small-1', '--json', '--verify']).json<
      Array<{ id: string; step: number; valid: boolean }>
    >();
    assert.deepEqual(
      list.map((c) => c.step),
      [15, 20, 24],
    );
    assert.ok(list.every((c) => c.valid === true));
    const status = cli(cluster, ['status', 'small-1', '--json']).json<{
      status: string;
      step: number;
      result: RunResult;
    }>();
    assert.equal(status.status, 'completed');
    assert.equal(status.step, 24);
    assert.equal(status.result.weightsSha256, result.weightsSha256);
    const human = cli(cluster, ['status', 'small-1']);
    assert.match(human.stdout, /completed/);
    assert.match(human.stdout, new RegExp(result.weightsSha256!));

    const progress = await cluster.client.workflow.getHandle('small-1').query(progressQuery);
    assert.equal(progress.status, 'completed');
    assert.equal(progress.chunks, 5);
    assert.equal(progress.lastCheckpoint?.id, result.lastCheckpoint?.id);
    assert.equal(progress.startMode, 'fresh');
  });

  it('a second start of a finished run id resumes from its checkpoints instead of starting over', async function () {
    await fx.worker();
    const file = writeSpec(cluster.dir, 'small-2.json', smallMlp);
    const done = cli(cluster, ['start', '--spec', file, '--run-id', 'small-2', '--wait', '--json']);
    assert.equal(done.code, 0, done.stderr);
    const first = done.json<{ result: RunResult }>().result;
    assert.equal(first.chunks, 5);
    const r = cli(cluster, ['start', '--spec', file, '--run-id', 'small-2', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.step, 24);
    assert.equal(result.chunks, 0); // nothing left to train
    assert.equal(result.accuracy, first.accuracy);
    assert.equal(result.weightsSha256, first.weightsSha256);
    const progress = await cluster.client.workflow.getHandle('small-2').query(progressQuery);
    assert.equal(progress.startMode, 'resume');
  });

  it('continues-as-new before history grows: state carries over and the weights match a single-execution run', async function () {
    await fx.worker();
    const spec = { ...smallMlp, chunkSteps: 3 };
    const file = writeSpec(cluster.dir, 'can.json', spec);
    const ref = cli(cluster, ['start', '--spec', file, '--run-id', 'can-ref', '--wait', '--json']);
    assert.equal(ref.code, 0, ref.stderr);
    const refResult = ref.json<{ result: RunResult }>().result;
    const handle = await cluster.client.workflow.start('trainingWorkflow', {
      workflowId: 'can',
      taskQueue: cluster.taskQueue,
      args: [{ spec: validateSpec(spec), chunksPerRun: 2 }],
      memo: { spec: validateSpec(spec) },
    });
    const result = (await handle.result()) as RunResult;
    assert.equal(result.step, 24);
    assert.equal(result.chunks, 8); // 24 steps in chunks of 3, counted across executions
    assert.equal(result.weightsSha256, refResult.weightsSha256);
    const progress = await handle.query(progressQuery);
    assert.equal(progress.continuedAsNew, 3); // 8 chunks, 2 per execution: 4 executions
    const executions = [];
    for await (const w of cluster.client.workflow.list({ query: `WorkflowId = 'can'` })) executions.push(w.runId);
    assert.equal(executions.length, 4);
    // The history measured: each execution of 2 chunks holds well under half the events (and bytes) of the one
    // execution that trained all 8 chunks, so a run's history stays bounded however long it trains.
    const sizeOf = async (runId?: string) => {
      const events = (await cluster.client.workflow.getHandle(runId ? 'can' : 'can-ref', runId).fetchHistory()).events!;
      return { events: events.length, bytes: JSON.stringify(events).length };
    };
    const single = await sizeOf();
    for (const runId of executions) {
      const one = await sizeOf(runId);
      assert.ok(
        one.events < single.events / 2 && one.bytes < single.bytes / 2,
        `execution ${runId}: ${JSON.stringify(one)}; one execution of 8 chunks: ${JSON.stringify(single)}`,
      );
    }
  });

  it('ends a chunk after chunkSeconds, below chunkSteps, with the same weights as one long chunk', async function () {
    // A paced worker makes every step take 50 ms longer (wall time only, same numbers), so 50 steps take at least
    // 2.5 s on any backend: with chunkSeconds 1 they are cut into several chunks by time; each ends with a
    // checkpoint and the next continues from it exactly.
    const worker = await fx.worker({ paced: { stepMs: 50 } });
    const spec = {
      model: 'mnist-cnn',
      dataset: { name: 'mnist', trainLimit: 3200, testLimit: 200, validationFraction: 0 },
      epochs: 1,
      batchSize: 64,
      chunkSteps: 1000,
      seed: 3,
      optimizer: { name: 'adam', learningRate: 0.001 },
      checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 50 },
    };
    const timed = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'timed.json', { ...spec, chunkSeconds: 1 }),
      '--run-id',
      'timed',
      '--wait',
      '--json',
    ]);
    assert.equal(timed.code, 0, timed.stderr + worker.output());
    const one = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'untimed.json', { ...spec, chunkSeconds: 3600 }),
      '--run-id',
      'untimed',
      '--wait',
      '--json',
    ]);
    assert.equal(one.code, 0, one.stderr);
    const t = timed.json<{ result: RunResult }>().result;
    const u = one.json<{ result: RunResult }>().result;
    assert.equal(u.chunks, 1);
    assert.ok(t.chunks >= 2, `expected the time bound to cut the run into chunks, got ${t.chunks}`);
    assert.equal(t.step, 50);
    assert.equal(t.weightsSha256, u.weightsSha256);
    const list = cli(cluster, ['checkpoints', 'list', 'timed', '--json']).json<Array<{ step: number }>>();
    assert.equal(list.length, t.chunks, 'one checkpoint per chunk');
  });

  it('survives a SIGKILL of the worker mid-chunk: a new worker finishes, no step is counted twice, same weights', async function () {
    const spec = {
      model: 'mnist-cnn',
      dataset: { name: 'mnist', trainLimit: 6400, testLimit: 500, validationFraction: 0 },
      epochs: 1,
      batchSize: 64,
      chunkSteps: 50,
      seed: 5,
      optimizer: { name: 'adam', learningRate: 0.001 },
      checkpoint: { storage: 'file://.data/checkpoints' },
    };
    const file = writeSpec(cluster.dir, 'cnn.json', spec);
    let worker = await fx.worker();
    const ref = cli(cluster, ['start', '--spec', file, '--run-id', 'cnn-ref', '--wait', '--json']);
    assert.equal(ref.code, 0, ref.stderr + worker.output());
    const refResult = ref.json<{ result: RunResult }>().result;
    assert.equal(refResult.step, 100);
    await worker.kill('SIGTERM');

    // Paced (every step 50 ms longer, same numbers): the first chunk of 50 steps runs for over 2.5 s, so a kill
    // after its first heartbeats lands inside it.
    worker = await fx.worker({ paced: { stepMs: 50 } });
    const started = cli(cluster, ['start', '--spec', file, '--run-id', 'cnn-kill', '--json']);
    assert.equal(started.code, 0, started.stderr);
    const handle = cluster.client.workflow.getHandle('cnn-kill');
    const seen = await waitFor(
      'the first chunk to report progress',
      async () => {
        const c = await runningChunk(handle);
        return c && c.step !== null && c.step >= 5 ? c : null;
      },
      120_000,
      50,
    );
    assert.ok(seen.step! < 50, `killed inside the first chunk (step ${seen.step})`);
    await worker.kill('SIGKILL');
    worker = await fx.worker();

    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 100);
    assert.ok(result.recoveries >= 1, 'the kill landed inside a chunk, so the chunk was retried');
    const progress = await handle.query(progressQuery);
    const rec = progress.recoveries[0];
    assert.ok(rec.attempt >= 2, JSON.stringify(rec));
    const ckpts = cli(cluster, ['checkpoints', 'list', 'cnn-kill', '--json']).json<Array<{ step: number }>>();
    assert.ok(ckpts.length > 1, `more than one checkpoint: ${JSON.stringify(ckpts)}`);
    assert.equal(result.weightsSha256, refResult.weightsSha256, 'the recovered run ends with the same weights');
    // Every step trained and logged once: the metrics log has steps 1..100, each once, with the reference run's
    // losses (a retried chunk's first attempt left no rows behind), and no step was checkpointed twice.
    const store = new FsCheckpointStore(path.join(cluster.dir, '.data', 'checkpoints'));
    const [refLog, killLog] = await Promise.all([
      readMetricsLog(store, 'cnn-ref', 100),
      readMetricsLog(store, 'cnn-kill', 100),
    ]);
    assert.deepEqual(
      killLog.rows.map((r) => r.step),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.deepEqual(deterministicLog(killLog), deterministicLog(refLog));
    const steps = fx.manifests('cnn-kill').map((m: { step: number }) => m.step);
    assert.equal(new Set(steps).size, steps.length, `one checkpoint per step: ${steps.join(',')}`);
  });
});
