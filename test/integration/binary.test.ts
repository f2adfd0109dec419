// task "binary" end to end: a real dev server, the real workflow and activities in a worker, the converted Keras
// classifier (Dense(1, sigmoid)) on scikit-learn's breast-cancer CSV with metrics auc, precision, recall and f1. The
// result, the checkpoints' manifest metrics and `evaluate` carry them; a model with three output units is refused
// before the run starts.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTrainingWorker, startTraining } from '../../index';
import { temporalSettings } from '../../cli/connection';
import { evaluateCommand } from '../../cli/evaluate';
import { runsListCommand } from '../../cli/runs';
import { managerForRun, metricsText } from '../../cli/checkpoints';
import type { Out } from '../../cli/common';
import type { RunSpecInput } from '../../spec/types';
import { binarySpec, KERAS_BINARY } from '../helpers/breast-cancer';
import { startCluster, tmpDir, type TestCluster } from '../helpers/cluster';

describe('task binary with a real worker', function () {
  this.timeout(300_000);
  let cluster: TestCluster;
  let dir: string;
  before(async () => {
    cluster = await startCluster();
    dir = tmpDir('dt-binary-');
  });
  after(async () => {
    await cluster?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const spec = (model: unknown) =>
    binarySpec({
      model: model as RunSpecInput['model'],
      epochs: 3,
      seed: 5,
      chunkSteps: 15,
      checkpoint: { storage: `file://${path.join(dir, 'ck')}`, keepLatest: 10 },
    });

  it('trains the Keras sigmoid classifier; result, checkpoints and evaluate carry its auc', async () => {
    const settings = temporalSettings(cluster.env);
    const keras = { tfjs: KERAS_BINARY };
    // Refused before anything starts: three output units for a binary task.
    await assert.rejects(
      startTraining(cluster.client, spec({ layers: [{ type: 'dense', units: 3 }] }), { runId: 'binary-3', settings }),
      /model: the last layer gives \[3\] per example; .* needs 1/,
    );
    const { worker, connection } = await createTrainingWorker({ settings });
    let result;
    try {
      const run = await startTraining(cluster.client, spec(keras), { runId: 'binary', settings });
      result = await worker.runUntil(run.result());
    } finally {
      await connection.close();
    }
    assert.equal(result.status, 'completed');
    assert.ok(result.accuracy! > 0.9, `test accuracy ${result.accuracy}`);
    assert.ok(typeof result.auc === 'number' && result.auc > 0.95 && result.auc <= 1, `test auc ${result.auc}`);
    assert.ok(typeof result.f1 === 'number' && typeof result.validation?.auc === 'number', JSON.stringify(result));

    const manager = await managerForRun(cluster.client, 'binary');
    const newest = (await manager.list()).at(-1)!;
    const metrics = (await manager.readManifest(newest.id)).metrics as Record<string, number>;
    assert.equal(metrics.testAuc, result.auc);
    assert.equal(typeof metrics.valAuc, 'number');
    assert.match(metricsText(metrics), /val auc [0-9.]+ val precision .* test acc [0-9.]+ test auc [0-9.]+/);

    const got: Array<{ auc: number; accuracy: number }> = [];
    const out: Out = { json: true, emit: (d) => got.push(d as { auc: number; accuracy: number }) };
    await evaluateCommand(cluster.client, out, { ref: `binary:${newest.id}`, split: 'test' });
    assert.equal(got[0].auc, result.auc, 'evaluate gives the run its own test auc');
    assert.equal(got[0].accuracy, result.accuracy);
    const text: string[] = [];
    await evaluateCommand(
      cluster.client,
      { json: false, emit: (_d, human) => text.push(human()) },
      { ref: `binary:${newest.id}`, split: 'validation' },
    );
    const runs: Array<Array<{ runId: string; auc?: number | null }>> = [];
    await runsListCommand(cluster.client, { json: true, emit: (d) => runs.push(d as (typeof runs)[0]) });
    assert.equal(runs[0].find((r) => r.runId === 'binary')?.auc, result.auc, 'runs list shows its test auc');
    assert.match(text[0], /validation accuracy [0-9.]+ {2}validation auc [0-9.]+ {2}validation precision [0-9.]+ {2}/);
  });
});
