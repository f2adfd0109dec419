// prepareRun builds a fresh run's model once (to fail a model that does not fit its data before any training). It must
// do so on the worker's backend, chosen first: a worker runs several activities at once, and a model built while
// another activity's first choice of the backend is still initialising it fails with tfjs's "Backend 'wasm' has not yet
// been initialized" (seen with five runs starting together on a fresh worker). In process, MockActivityEnvironment.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { TrainingMetrics } from '../../activities/metrics';
import type { PrepareRunResult } from '../../activities/types';
import { validateSpec } from '../../spec';
import { currentBackend, initBackend, resetBackendChoice } from '../../training/backend';

describe('prepareRun and the backend', function () {
  this.timeout(120_000);
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-prepare-backend-'));
  });

  afterEach(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await initBackend(); // the suite's backend again, for the tests after this one
  });

  it("chooses the worker's backend before it builds a fresh run's model, whatever tf had active", async () => {
    const expected = await initBackend();
    // A worker process that has not chosen yet, with tf on another backend (tf's own default would be another).
    resetBackendChoice();
    await tf.setBackend(expected.name === 'cpu' ? 'wasm' : 'cpu');
    assert.equal(currentBackend(), null);
    const spec = validateSpec({
      model: 'mnist-mlp',
      dataset: { name: 'mnist', trainLimit: 64, testLimit: 32 },
      epochs: 1,
      batchSize: 32,
      optimizer: { name: 'sgd', learningRate: 0.1 },
      checkpoint: { storage: `file://${dir}/ck` },
    });
    fs.mkdirSync(path.join(dir, 'ck'));
    const acts = createActivities({ baseDir: dir, metrics: new TrainingMetrics() });
    const prepared = (await new MockActivityEnvironment().run(acts.prepareRun, {
      runId: 'fresh',
      spec,
      from: null,
    })) as PrepareRunResult;
    assert.equal(prepared.mode, 'fresh');
    assert.equal(currentBackend()?.name, expected.name, 'prepareRun chose the backend');
    assert.equal(tf.getBackend(), expected.name, 'the probe model was built on the chosen backend');
  });
});
