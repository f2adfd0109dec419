// A run computes on the backend its checkpoints were written on: a worker that follows runs' backends (a training
// process, or a worker with one slot that chooses its backend itself) restores a run on that backend and goes on
// exactly; one that does not refuses it, as before. prepareRun reads a finished run on any backend. In process, with
// MockActivityEnvironment, on the pure-JS cpu backend beside the suite's own.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { TrainingMetrics } from '../../activities/metrics';
import type { ChunkSummary, PrepareRunResult } from '../../activities/types';
import { validateSpec } from '../../spec';
import { initBackend, useBackend, type BackendName } from '../../training/backend';

describe('a run on its own backend', function () {
  this.timeout(120_000);
  let dir: string;
  let suite: BackendName;

  before(async () => {
    suite = (await initBackend()).name;
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-run-backend-'));
    fs.mkdirSync(path.join(dir, 'ck'));
  });
  afterEach(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await initBackend(suite); // the suite's backend again, for the tests after this one
  });

  // The activities keep no trainer between chunks (warmRuns 0): one left warm would hold its variables past this file,
  // in a process that runs other test files after it.
  const other = (): BackendName => (suite === 'cpu' ? 'wasm' : 'cpu');
  const specOf = () =>
    validateSpec({
      model: 'mnist-mlp',
      dataset: { name: 'mnist', trainLimit: 64, testLimit: 32, validationFraction: 0 },
      epochs: 3,
      batchSize: 32,
      chunkSteps: 3,
      seed: 5,
      optimizer: { name: 'adam', learningRate: 0.01 },
      checkpoint: { storage: `file://${dir}/ck` },
    });
  /** Runs `fn` in a worker process whose backend is `name` (DURABLE_TRAIN_BACKEND, as an operator sets it). */
  async function onBackend<T>(name: BackendName, fn: () => Promise<T>): Promise<T> {
    const saved = process.env.DURABLE_TRAIN_BACKEND;
    process.env.DURABLE_TRAIN_BACKEND = name;
    try {
      await initBackend();
      return await fn();
    } finally {
      process.env.DURABLE_TRAIN_BACKEND = saved;
      await initBackend();
    }
  }
  const chunk = (acts: ReturnType<typeof createActivities>, input: object) =>
    new MockActivityEnvironment().run(acts.trainChunk, input as never) as Promise<ChunkSummary>;

  it("restores a run on its checkpoint's backend where the worker follows runs' backends, and refuses it elsewhere", async () => {
    const spec = specOf();
    const plain = createActivities({ baseDir: dir, metrics: new TrainingMetrics(), warmRuns: 0 });
    // Trained on the other backend: the reference, uninterrupted, and a run stopped after 3 of its 6 steps.
    const [ref, half] = await onBackend(other(), async () => [
      await chunk(plain, { runId: 'ref', spec, from: null, steps: 6 }),
      await chunk(plain, { runId: 'half', spec, from: null, steps: 3 }),
    ]);
    assert.equal(ref.backend, other());
    assert.equal(half.step, 3);
    assert.equal(tf.getBackend(), suite);

    // A worker on the suite's backend that does not follow (another, holding nothing warm): the restore is refused,
    // naming both backends.
    const cold = createActivities({ baseDir: dir, metrics: new TrainingMetrics(), warmRuns: 0 });
    await assert.rejects(
      chunk(cold, { runId: 'half', spec, from: half.checkpoint, steps: 3 }),
      new RegExp(`written on backend ${other()}, this worker runs ${suite}`),
    );

    // One that follows: the run goes on on its own backend and ends with the uninterrupted weights.
    const following = createActivities({ baseDir: dir, metrics: new TrainingMetrics(), useBackend, warmRuns: 0 });
    const rest = await chunk(following, { runId: 'half', spec, from: half.checkpoint, steps: 3 });
    assert.equal(rest.backend, other());
    assert.equal(rest.weightsSha256, ref.weightsSha256);
    assert.equal(tf.getBackend(), other(), 'the run computed on its backend');
    // Whatever asks for the worker's backend next gets it back.
    assert.equal((await initBackend()).name, suite);
    assert.equal(tf.getBackend(), suite);
  });

  it("prepareRun reports a finished run's weights and backend whatever backend the worker runs", async () => {
    const spec = specOf();
    const acts = createActivities({ baseDir: dir, metrics: new TrainingMetrics(), warmRuns: 0 });
    const done = await onBackend(other(), () => chunk(acts, { runId: 'done', spec, from: null, steps: 6 }));
    assert.equal(done.done, true);
    assert.equal(done.backend, other());
    const prepared = (await new MockActivityEnvironment().run(acts.prepareRun, {
      runId: 'done',
      spec,
      from: null,
    })) as PrepareRunResult;
    assert.equal(prepared.mode, 'resume');
    assert.deepEqual(
      { sha: prepared.finished?.weightsSha256, backend: prepared.finished?.backend },
      { sha: done.weightsSha256, backend: other() },
    );
  });
});
