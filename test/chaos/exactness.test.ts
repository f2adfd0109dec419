// Exact resume under real failures: SIGKILLed workers (mid-chunk and mid-commit), a killed Temporal
// server, a second worker taking over, and damaged checkpoints. Every interrupted run must end with
// the same weights hash as the same spec run without interruption.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
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
import { chunkProgressed, TEST_HEARTBEAT_S } from '../helpers/fixtures';

const mlpSpec = {
  model: 'mnist-mlp',
  // 2,000 steps: kills follow observed heartbeats (one a second) and commits (one a second), so the three kills below
  // need a few seconds of training, not the length of the run.
  dataset: { name: 'mnist', trainLimit: 8000, testLimit: 500, validationFraction: 0 },
  epochs: 2,
  batchSize: 8,
  // Long chunks, so a kill at a random moment lands inside one.
  chunkSteps: 600,
  seed: 1234,
  dropout: 0.2,
  augment: { shift: 2 },
  optimizer: { name: 'adam', learningRate: 0.001 },
  schedule: { name: 'cosine', warmupSteps: 50, minLearningRate: 0.0001 },
  checkpoint: { storage: 'file://.data/checkpoints', everySeconds: 1, keepLatest: 4 },
  heartbeatTimeoutSeconds: TEST_HEARTBEAT_S,
};

const cnnSpec = {
  ...mlpSpec,
  model: 'mnist-cnn',
  dataset: { name: 'mnist', trainLimit: 3200, testLimit: 300, validationFraction: 0 },
  batchSize: 32,
  chunkSteps: 25,
  dropout: 0.25,
};

/** Waits until `worker` has started a trainChunk attempt of the run (so a kill lands mid-chunk). */
async function chunkRunningOn(handle: WorkflowHandle, worker: WorkerProcess): Promise<void> {
  const identity = `${worker.proc.pid}@`;
  await waitFor(`a chunk running on worker ${worker.proc.pid}`, async () => {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING') throw new Error(`run is ${d.status.name}`);
    return d.raw.pendingActivities?.some(
      (a) => a.activityType?.name === 'trainChunk' && (a.lastWorkerIdentity ?? '').startsWith(identity),
    );
  });
}

describe('exact resume under real failures (real dev server, worker processes killed with SIGKILL)', function () {
  this.timeout(900_000);
  let cluster: TestCluster;
  const workers: WorkerProcess[] = [];
  const reference: Record<string, string> = {};

  const worker = (env?: NodeJS.ProcessEnv) => {
    const w = spawnWorker(cluster, { env });
    workers.push(w);
    return w;
  };
  const start = (name: string, spec: object, runId: string): WorkflowHandle => {
    const r = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, `${name}.json`, spec),
      '--run-id',
      runId,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    return cluster.client.workflow.getHandle(runId);
  };

  before(async function () {
    cluster = await startCluster();
    const w = worker();
    await w.ready;
    // Uninterrupted references, one per model, on the same backend as everything below.
    for (const [name, spec] of [
      ['mlp', mlpSpec],
      ['cnn', cnnSpec],
    ] as const) {
      const r = cli(cluster, [
        'start',
        '--spec',
        writeSpec(cluster.dir, `${name}.json`, spec),
        '--run-id',
        `${name}-ref`,
        '--wait',
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr + w.output());
      const { result } = r.json<{ result: RunResult }>();
      assert.equal(result.status, 'completed');
      assert.match(result.weightsSha256 ?? '', /^[0-9a-f]{64}$/);
      reference[name] = result.weightsSha256!;
    }
    await w.kill('SIGTERM');
  });

  // Every test brings its own workers: one left alive would pick up the next test's run.
  afterEach(async function () {
    for (const w of workers.splice(0)) await w.kill('SIGKILL');
  });
  after(async function () {
    await cluster?.close();
  });

  for (const [name, spec] of [
    ['mlp', mlpSpec],
    ['cnn', cnnSpec],
  ] as const) {
    it(`${name}: three SIGKILLs (mid-chunk, during a checkpoint write, mid-chunk) end with the uninterrupted hash`, async function () {
      const runId = `${name}-killed`;
      const handle = start(name, spec, runId);

      const w1 = worker();
      await w1.ready;
      let since = Date.now();
      await chunkRunningOn(handle, w1);
      await chunkProgressed(handle, since, w1); // it trains: a heartbeat from this worker
      await w1.kill('SIGKILL'); // 1: mid-chunk

      const w2 = worker({ DURABLE_TRAIN_FAILPOINT: 'kill-before-manifest:0' });
      const w2code = await w2.exited; // 2: it kills itself between a commit's blobs and its manifest
      assert.match(w2.output(), /failpoint: killing myself during the commit of step \d+/, w2.output());
      assert.equal(w2code, null);

      const w3 = worker();
      await w3.ready;
      since = Date.now();
      await chunkRunningOn(handle, w3);
      await chunkProgressed(handle, since, w3);
      await w3.kill('SIGKILL'); // 3: mid-chunk

      const w4 = worker();
      await w4.ready;
      const result = (await handle.result()) as RunResult;
      assert.equal(result.status, 'completed');
      assert.equal(result.step, result.totalSteps);
      // Each retry that ended in a summary records its attempt number: failed attempts = sum(attempt - 1).
      const progress = await handle.query(progressQuery);
      const failedAttempts = progress.recoveries.reduce((n, r) => n + r.attempt - 1, 0);
      assert.ok(failedAttempts >= 3, `three killed attempts expected: ${JSON.stringify(progress.recoveries)}`);
      assert.equal(result.weightsSha256, reference[name], 'interrupted run must end with the uninterrupted weights');

      // The half-written commit left blobs but no manifest: nothing damaged is listed, everything verifies.
      const verify = cli(cluster, ['checkpoints', 'verify', runId, '--json']);
      assert.equal(verify.code, 0, verify.stdout);
    });
  }

  it('the Temporal server is SIGKILLed and restarted on the same SQLite file mid-run: same hash', async function () {
    const w = worker();
    await w.ready;
    const since = Date.now();
    const handle = start('mlp', mlpSpec, 'mlp-server-killed');
    await chunkRunningOn(handle, w);
    await chunkProgressed(handle, since, w);
    await cluster.restartServer({ kill: true });
    const result = (await cluster.client.workflow.getHandle('mlp-server-killed').result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.weightsSha256, reference.mlp);
    await w.kill('SIGTERM');
  });

  it('two workers on one task queue: the one running the chunk is killed, the other finishes; same hash', async function () {
    const a = worker();
    const b = worker();
    await Promise.all([a.ready, b.ready]);
    const since = Date.now();
    const handle = start('mlp', mlpSpec, 'mlp-two-workers');
    let running: WorkerProcess | undefined;
    await waitFor('a chunk on either worker', async () => {
      const d = await handle.describe();
      const id = d.raw.pendingActivities?.find((p) => p.activityType?.name === 'trainChunk')?.lastWorkerIdentity ?? '';
      running = [a, b].find((w) => id.startsWith(`${w.proc.pid}@`));
      return running;
    });
    await chunkProgressed(handle, since, running);
    await running!.kill('SIGKILL');
    const survivor = running === a ? b : a;
    const result = (await handle.result()) as RunResult;
    assert.equal(result.weightsSha256, reference.mlp);
    assert.ok(result.recoveries >= 1);
    assert.equal(survivor.proc.exitCode, null, 'the other worker is still alive');
    await survivor.kill('SIGTERM');
  });

  for (const damage of ['flip a byte in a blob', 'truncate the manifest'] as const) {
    it(`damaged newest checkpoint (${damage}): verify names it, the run falls back and ends with the same hash`, async function () {
      const runId = `mlp-damaged-${damage.split(' ')[0]}`;
      const w = worker();
      await w.ready;
      const handle = start('mlp', mlpSpec, runId);
      await waitFor(
        'two chunks committed',
        async () => ((await handle.query(progressQuery)).lastCheckpoint?.step ?? 0) >= 2 * mlpSpec.chunkSteps,
      );
      await w.kill('SIGKILL');

      const dir = path.join(cluster.dir, '.data', 'checkpoints', runId);
      const manifests = fs
        .readdirSync(path.join(dir, 'manifests'))
        .filter((f) => f.endsWith('.json'))
        .sort();
      const newestFile = manifests[manifests.length - 1];
      const newest = JSON.parse(fs.readFileSync(path.join(dir, 'manifests', newestFile), 'utf8'));
      const prev = JSON.parse(fs.readFileSync(path.join(dir, 'manifests', manifests[manifests.length - 2]), 'utf8'));
      const shared = new Set((prev.blobs as Array<{ sha256: string }>).map((b) => b.sha256));
      let named: string;
      if (damage === 'flip a byte in a blob') {
        const blob = (newest.blobs as Array<{ name: string; sha256: string; size: number }>).find(
          (b) => !shared.has(b.sha256) && b.name.startsWith('model/'),
        )!;
        const file = path.join(dir, 'blobs', blob.sha256);
        const bytes = fs.readFileSync(file);
        bytes[Math.floor(bytes.length / 2)] ^= 0xff;
        fs.writeFileSync(file, bytes);
        named = blob.name;
      } else {
        const file = path.join(dir, 'manifests', newestFile);
        fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
        named = newest.id;
      }

      const verify = cli(cluster, ['checkpoints', 'verify', runId]);
      assert.equal(verify.code, 1, verify.stdout + verify.stderr);
      assert.ok(verify.stdout.includes(named), `verify output names ${named}:\n${verify.stdout}`);
      const list = cli(cluster, ['checkpoints', 'list', runId, '--verify', '--json']).json<
        Array<{ id: string; valid: boolean }>
      >();
      assert.ok(
        list.some((c) => c.valid === false),
        JSON.stringify(list),
      );

      const w2 = worker();
      await w2.ready;
      const result = (await handle.result()) as RunResult;
      assert.equal(
        result.weightsSha256,
        reference.mlp,
        'falls back to the previous valid checkpoint and still ends exact',
      );
      const progress = await handle.query(progressQuery);
      const said = JSON.stringify(progress.recoveries) + JSON.stringify(progress.skippedCheckpoints);
      assert.match(
        said,
        /damaged/,
        `the fallback is reported in the progress query: ${said}; manifests at the kill: ${manifests.join(', ')}; damaged ${newestFile}`,
      );
      await w2.kill('SIGTERM');
    });
  }
});
