// Steering runs from the CLI against the real dev server: pause/resume, set-lr, stop, cancel, fork, lineage.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { progressQuery } from '../../workflows/definitions';
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

const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 12000, testLimit: 300 },
  epochs: 1,
  batchSize: 16,
  chunkSteps: 100,
  seed: 99,
  dropout: 0.1,
  optimizer: { name: 'adam', learningRate: 0.001 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 2, keepEverySteps: 300 },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('operating runs from the CLI (real dev server, real worker)', function () {
  this.timeout(600_000);
  let cluster: TestCluster;
  let worker: WorkerProcess;
  let specFile: string;
  let reference: RunResult;

  const manifestsOf = (runId: string) => {
    const dir = path.join(cluster.dir, '.data', 'checkpoints', runId, 'manifests');
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
  };
  const startRun = (runId: string) => {
    const r = cli(cluster, ['start', '--spec', specFile, '--run-id', runId, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return cluster.client.workflow.getHandle(runId);
  };
  const stepAtLeast = (runId: string, n: number) =>
    waitFor(
      `${runId} past step ${n}`,
      async () => ((await cluster.client.workflow.getHandle(runId).query(progressQuery)).step ?? 0) >= n,
      120_000,
      100,
    );

  before(async function () {
    cluster = await startCluster();
    worker = spawnWorker(cluster);
    await worker.ready;
    specFile = writeSpec(cluster.dir, 'spec.json', spec);
    const r = cli(cluster, ['start', '--spec', specFile, '--run-id', 'ref', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr + worker.output());
    reference = r.json<{ result: RunResult }>().result;
    assert.equal(reference.step, 750);
  });
  after(async function () {
    await worker?.kill('SIGTERM');
    await cluster?.close();
  });

  it('pause holds the run (no steps while paused); resume finishes with the hash of a never-paused run', async function () {
    const handle = startRun('paused');
    await stepAtLeast('paused', 100);
    const p = cli(cluster, ['pause', 'paused', '--json']);
    assert.equal(p.code, 0, p.stderr);
    await waitFor('status paused', async () => (await handle.query(progressQuery)).status === 'paused', 60_000);
    const at = (await handle.query(progressQuery)).step;
    assert.ok(at < 750, `paused before the end (step ${at})`);
    await sleep(3000);
    const later = await handle.query(progressQuery);
    assert.equal(later.step, at, 'no training while paused');
    assert.equal(later.status, 'paused');
    const status = cli(cluster, ['status', 'paused', '--json']).json<{ status: string }>();
    assert.equal(status.status, 'paused');
    assert.equal(cli(cluster, ['resume', 'paused']).code, 0);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.weightsSha256, reference.weightsSha256);
  });

  it('set-lr validates (rejected values change nothing) and records the change in checkpoints and history', async function () {
    const handle = startRun('lr');
    await stepAtLeast('lr', 50);
    // Hold the run while we try values, so it cannot finish under us.
    assert.equal(cli(cluster, ['pause', 'lr']).code, 0);
    await waitFor('status paused', async () => (await handle.query(progressQuery)).status === 'paused', 60_000);
    for (const bad of ['-1', '0', 'abc', '100']) {
      const r = cli(cluster, ['set-lr', 'lr', bad]);
      assert.equal(r.code, 2, `${bad}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /learning rate|must be a number|set-lr/);
    }
    assert.deepEqual((await handle.query(progressQuery)).learningRateChanges, []);
    const ok = cli(cluster, ['set-lr', 'lr', '0.0005', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.json<{ learningRate: number }>().learningRate, 0.0005);
    assert.equal(cli(cluster, ['resume', 'lr']).code, 0);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.notEqual(result.weightsSha256, reference.weightsSha256, 'a different learning rate changes the weights');
    const progress = await handle.query(progressQuery);
    assert.deepEqual(
      progress.learningRateChanges.map((c) => c.value),
      [0.0005],
    );
    const last = manifestsOf('lr').sort((a, b) => b.step - a.step)[0];
    assert.equal(last.metrics.learningRate, 0.0005);
    const history = await handle.fetchHistory();
    assert.ok(
      history.events?.some((e) => e.workflowExecutionUpdateAcceptedEventAttributes),
      'the update is in the history',
    );
  });

  it('stop commits a final checkpoint and completes with status stopped', async function () {
    const handle = startRun('stopped');
    await stepAtLeast('stopped', 100);
    assert.equal(cli(cluster, ['stop', 'stopped']).code, 0);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'stopped');
    assert.ok(result.step < 750, `stopped early at ${result.step}`);
    const last = manifestsOf('stopped').sort((a, b) => b.step - a.step)[0];
    assert.equal(last.id, result.lastCheckpoint?.id);
    assert.equal(last.step, result.step);
    assert.equal(cli(cluster, ['status', 'stopped', '--json']).json<{ status: string }>().status, 'stopped');
  });

  it('cancel ends the run as cancelled after the running chunk checkpoints', async function () {
    const handle = startRun('cancelled');
    await stepAtLeast('cancelled', 100);
    assert.equal(cli(cluster, ['cancel', 'cancelled']).code, 0);
    await assert.rejects(handle.result());
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    const newest = manifestsOf('cancelled').sort((a, b) => b.step - a.step)[0];
    assert.ok(newest.step >= 100 && newest.step < 750, `a checkpoint at the cancellation point: ${newest.step}`);
  });

  it('fork from a mid-run checkpoint with an empty override ends with the original hash; lineage and runs list show it', async function () {
    const mid = manifestsOf('ref').find((m) => m.step === 300);
    assert.ok(mid, 'keepEverySteps kept step 300');
    const override = writeSpec(cluster.dir, 'empty.json', {});
    const r = cli(cluster, [
      'fork',
      '--from',
      `ref:${mid.id}`,
      '--spec-override',
      override,
      '--run-id',
      'ref-fork',
      '--wait',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.step, 750);
    assert.equal(result.weightsSha256, reference.weightsSha256);
    const first = manifestsOf('ref-fork').sort((a, b) => a.step - b.step)[0];
    assert.ok(first.step > 300);
    // The fork's checkpoints record their parent chain back into the source run.
    const all = manifestsOf('ref-fork');
    assert.ok(
      all.some((m) => m.parent?.runId === 'ref' && m.parent.id === mid.id) || first.parent?.runId === 'ref-fork',
    );

    const changed = writeSpec(cluster.dir, 'lr.json', { optimizer: { learningRate: 0.01 } });
    const r2 = cli(cluster, ['fork', '--from', 'ref', '--spec-override', changed, '--run-id', 'ref-fork-lr', '--json']);
    assert.equal(r2.code, 0, r2.stderr);
    const bad = writeSpec(cluster.dir, 'bad.json', { optimizer: { learningRate: -3 } });
    const r3 = cli(cluster, ['fork', '--from', 'ref', '--spec-override', bad]);
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /optimizer\.learningRate/);

    // Frozen layers: a fine-tuning fork keeps dense1 byte-identical to the source checkpoint while dense2 trains.
    const freeze = writeSpec(cluster.dir, 'freeze.json', { freeze: ['dense1'] });
    const r4 = cli(cluster, [
      'fork',
      '--from',
      `ref:${mid.id}`,
      '--spec-override',
      freeze,
      '--run-id',
      'ref-frozen',
      '--wait',
      '--json',
    ]);
    assert.equal(r4.code, 0, r4.stderr);
    const frozenEnd = manifestsOf('ref-frozen').sort((a, b) => b.step - a.step)[0];
    const blobOf = (m: { blobs: Array<{ name: string; sha256: string }> }, name: string) =>
      m.blobs.find((b) => b.name === name)?.sha256;
    for (const w of ['model/dense1/kernel', 'model/dense1/bias']) assert.equal(blobOf(frozenEnd, w), blobOf(mid, w), w);
    assert.notEqual(blobOf(frozenEnd, 'model/dense2/kernel'), blobOf(mid, 'model/dense2/kernel'));

    const lineage = cli(cluster, ['lineage', 'ref-fork']);
    assert.equal(lineage.code, 0, lineage.stderr);
    assert.match(lineage.stdout, /^ref \[/m);
    assert.match(lineage.stdout, /ref-fork \[.*\(from step-000000300/);
    assert.match(lineage.stdout, /ref-fork-lr/);
    const runs = cli(cluster, ['runs', 'list', '--json']).json<
      Array<{ runId: string; status: string; model: string }>
    >();
    for (const id of ['ref', 'paused', 'lr', 'stopped', 'cancelled', 'ref-fork', 'ref-fork-lr']) {
      assert.ok(
        runs.some((x) => x.runId === id),
        `runs list has ${id}`,
      );
    }
    assert.equal(runs.find((x) => x.runId === 'stopped')?.status, 'stopped');
  });
});
