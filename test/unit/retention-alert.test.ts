// An outage during applyRetention counts toward 'save-failing' like one during a chunk (in process: real filesystem
// store whose directory is replaced by a file, MockActivityEnvironment, an alert sink that logs).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../../activities';
import { TrainingMetrics } from '../../activities/metrics';
import { FailureTypes, type ChunkSummary } from '../../activities/types';
import { validateSpec } from '../../spec';
import { AlertSink } from '../../telemetry/alerts';

describe('storage failures of applyRetention count toward save-failing', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-retention-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('three failed retention attempts in a row raise one save-failing alert naming the run', async () => {
    const spec = validateSpec({
      model: 'mnist-mlp',
      dataset: { name: 'mnist', trainLimit: 40, testLimit: 10 },
      epochs: 1,
      batchSize: 20,
      chunkSteps: 1,
      seed: 1,
      optimizer: { name: 'sgd', learningRate: 0.01 },
      checkpoint: { storage: `file://${dir}/ck`, keepLatest: 1 },
    });
    const logged: string[] = [];
    const metrics = new TrainingMetrics();
    const sink = new AlertSink({ url: null, counters: metrics, log: (_, m) => logged.push(m) });
    fs.mkdirSync(path.join(dir, 'ck')); // a run's store exists once prepareRun has probed it
    const acts = createActivities({ baseDir: dir, warmRuns: 0, metrics, alerts: sink });
    const env = () => new MockActivityEnvironment();
    const first = (await env().run(acts.trainChunk, { runId: 'kept', spec, from: null, steps: 1 })) as ChunkSummary;
    const root = path.join(dir, 'ck');
    fs.renameSync(root, `${root}.away`);
    fs.writeFileSync(root, 'a file where the store directory was');
    for (let i = 0; i < 3; i++) {
      await assert.rejects(
        env().run(acts.applyRetention, { runId: 'kept', spec, protect: [first.checkpoint.id] }),
        (err: unknown) => {
          assert.ok(err instanceof ApplicationFailure, String(err));
          assert.equal(err.type, FailureTypes.StorageUnavailable);
          assert.match(err.message, /retention of run kept failed: storage unavailable/);
          return true;
        },
      );
    }
    const alerts = logged.filter((m) => /checkpoint saves of run kept failed 3 times in a row/.test(m));
    assert.equal(alerts.length, 1, logged.join('\n'));
  });
});
