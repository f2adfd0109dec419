// Exact resume on the native TensorFlow backend: a small CNN trained by a real worker with
// DURABLE_TRAIN_BACKEND=tensorflow, SIGKILLed mid-chunk (twice), ends with the weights of the same spec run
// without interruption. The backend is the tfjs-node binding that `npm run setup:native` builds against
// TensorFlow's PyPI wheel; when it is absent the test builds it first, and skips (loudly) only when that build
// cannot be done on this machine.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { privateTfjsNodeDir, TFJS_NODE_DIR_ENV_VAR } from '../../training/backend';
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

const PROJECT_ROOT = path.resolve(__dirname, '..', '..', '..');
const TENSORFLOW = { DURABLE_TRAIN_BACKEND: 'tensorflow' };

const spec = {
  model: 'mnist-cnn',
  dataset: { name: 'mnist', trainLimit: 6400, testLimit: 300 },
  epochs: 2,
  batchSize: 64,
  // Long chunks, so a kill at a random moment lands inside one.
  chunkSteps: 100,
  seed: 4321,
  dropout: 0.25,
  augment: { shift: 2 },
  optimizer: { name: 'adam', learningRate: 0.001 },
  schedule: { name: 'cosine', warmupSteps: 10, minLearningRate: 0.0001 },
  checkpoint: { storage: 'file://.data/checkpoints', everySeconds: 1, keepLatest: 4 },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a tfjs-node can be loaded: a normally installed one, or the private build of setup:native. */
function nativeBuildPresent(): boolean {
  try {
    require.resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return privateTfjsNodeDir() !== null;
  }
}

/** Builds the native backend when it is absent; returns why it cannot be had here, or null. */
function ensureNativeBuild(): string | null {
  if (nativeBuildPresent()) return null;
  const r = spawnSync('bash', [path.join(PROJECT_ROOT, 'scripts', 'setup-native.sh')], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: 1_500_000,
  });
  if (r.status === 0 && nativeBuildPresent()) return null;
  if (r.status === 0) return `npm run setup:native succeeded, yet no tfjs-node is found (${TFJS_NODE_DIR_ENV_VAR}?)`;
  return `npm run setup:native failed (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}): ${(r.stderr ?? '').trim().slice(-1500)}`;
}

describe('native TensorFlow backend: exact resume after SIGKILL (real dev server, worker processes)', function () {
  this.timeout(1_800_000);
  let cluster: TestCluster | undefined;
  const workers: WorkerProcess[] = [];
  let reference = '';

  const worker = () => {
    const w = spawnWorker(cluster!, { env: TENSORFLOW });
    workers.push(w);
    return w;
  };
  const start = (runId: string, wait: boolean) =>
    cli(cluster!, [
      'start',
      '--spec',
      writeSpec(cluster!.dir, 'cnn.json', spec),
      '--run-id',
      runId,
      ...(wait ? ['--wait'] : []),
      '--json',
    ]);

  before(async function () {
    const cannot = ensureNativeBuild();
    if (cannot) {
      // The only skip in the suite: the native build needs g++, python3 and the PyPI and npm registries.
      console.error(
        `\n${'!'.repeat(100)}\n!!! SKIPPING the native TensorFlow backend test: the native build cannot be done on this machine.\n` +
          `!!! ${cannot.replace(/\n/g, '\n!!! ')}\n${'!'.repeat(100)}\n`,
      );
      this.skip();
    }
    cluster = await startCluster();
    const w = worker();
    await w.ready;
    const r = start('cnn-tf-ref', true);
    assert.equal(r.code, 0, r.stderr + w.output());
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.status, 'completed');
    assert.equal(result.backend, 'tensorflow', w.output());
    assert.match(result.weightsSha256 ?? '', /^[0-9a-f]{64}$/);
    reference = result.weightsSha256!;
    await w.kill('SIGTERM');
  });

  afterEach(async function () {
    for (const w of workers.splice(0)) await w.kill('SIGKILL');
  });
  after(async function () {
    // Also the reference worker, when the before hook failed before stopping it.
    for (const w of workers.splice(0)) await w.kill('SIGKILL');
    await cluster?.close();
  });

  it('two SIGKILLs mid-chunk end with the uninterrupted weights', async function () {
    const runId = 'cnn-tf-killed';
    const r = start(runId, false);
    assert.equal(r.code, 0, r.stderr);
    const handle: WorkflowHandle = cluster!.client.workflow.getHandle(runId);

    for (let kill = 1; kill <= 2; kill++) {
      const w = worker();
      await w.ready;
      const identity = `${w.proc.pid}@`;
      await waitFor(`a chunk running on worker ${w.proc.pid}`, async () => {
        const d = await handle.describe();
        if (d.status.name !== 'RUNNING') throw new Error(`run is ${d.status.name}`);
        return d.raw.pendingActivities?.some(
          (a) => a.activityType?.name === 'trainChunk' && (a.lastWorkerIdentity ?? '').startsWith(identity),
        );
      });
      await sleep(300 + Math.random() * 1200);
      await w.kill('SIGKILL');
    }

    const last = worker();
    await last.ready;
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.step, result.totalSteps);
    assert.equal(result.backend, 'tensorflow');
    // Each retry that ended in a summary records its attempt number: failed attempts = sum(attempt - 1).
    const progress = await handle.query(progressQuery);
    const failedAttempts = progress.recoveries.reduce((n, rec) => n + rec.attempt - 1, 0);
    assert.ok(failedAttempts >= 2, `two killed attempts expected: ${JSON.stringify(progress.recoveries)}`);
    assert.equal(result.weightsSha256, reference, 'interrupted run must end with the uninterrupted weights');
  });
});
