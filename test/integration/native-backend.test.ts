// Exact resume on the native TensorFlow backend: a small CNN trained by a real worker with
// DURABLE_TRAIN_BACKEND=tensorflow, SIGKILLed mid-chunk (twice), ends with the weights of the same spec run
// without interruption. The backend is the tfjs-node binding that `npm run setup:native` builds against
// TensorFlow's PyPI wheel; when it is absent the test builds it first, and skips (loudly) only when that build
// cannot be done on this machine.
import * as assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, writeSpec } from '../helpers/cluster';
import { chunkProgressed, smallSpec, useCluster } from '../helpers/fixtures';
import { requireNative } from '../helpers/native';

const TENSORFLOW = { DURABLE_TRAIN_BACKEND: 'tensorflow' };

const spec = smallSpec({
  model: 'mnist-cnn',
  dataset: { name: 'mnist', trainLimit: 6400, testLimit: 300, validationFraction: 0 },
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
});

describe('native TensorFlow backend: exact resume after SIGKILL (real dev server, worker processes)', function () {
  this.timeout(1_800_000);
  // First: the native build (a skip here skips the block before any server starts).
  before(function () {
    // The native build comes from `npm run setup:test`; under CI=true its absence fails here instead of skipping.
    requireNative(this, 'the native TensorFlow backend test');
  });
  const fx = useCluster();
  let reference = '';

  const worker = () => fx.worker({ env: TENSORFLOW });
  const start = (runId: string, wait: boolean) =>
    cli(fx.cluster, [
      'start',
      '--spec',
      writeSpec(fx.cluster.dir, 'cnn.json', spec),
      '--run-id',
      runId,
      ...(wait ? ['--wait'] : []),
      '--json',
    ]);

  before(async function () {
    const w = await worker();
    const r = start('cnn-tf-ref', true);
    assert.equal(r.code, 0, r.stderr + w.output());
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.status, 'completed');
    assert.equal(result.backend, 'tensorflow', w.output());
    assert.match(result.weightsSha256 ?? '', /^[0-9a-f]{64}$/);
    reference = result.weightsSha256!;
    await w.kill('SIGTERM');
  });

  it('two SIGKILLs mid-chunk end with the uninterrupted weights', async function () {
    const runId = 'cnn-tf-killed';
    const r = start(runId, false);
    assert.equal(r.code, 0, r.stderr);
    const handle: WorkflowHandle = fx.cluster.client.workflow.getHandle(runId);

    for (let kill = 1; kill <= 2; kill++) {
      const w = await worker();
      // Killed once a chunk on this worker has heartbeated a step: mid-chunk (chunks are 100 steps long).
      const seen = Date.now();
      await chunkProgressed(handle, seen, w);
      await w.kill('SIGKILL');
    }

    await worker();
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
