// Choices follow the validation split, end to end: a real dev server, the real workflow and activities in a worker
// with a registered dataset built so that validation and test disagree (validation labels are the opposite of the
// train and test ones: the longer it trains, the better on test and the worse on validation). Early stopping and
// keepBest pick the best validation checkpoint; `evaluate` shows a test-set choice would have picked another.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTrainingWorker, startTraining } from '../../index';
import { temporalSettings } from '../../cli/connection';
import { evaluateCommand } from '../../cli/evaluate';
import { managerForRun } from '../../cli/checkpoints';
import type { Out } from '../../cli/common';
import { opposedData } from '../helpers/opposed-data';
import { startCluster, tmpDir, type TestCluster } from '../helpers/cluster';

describe('evaluation with a real worker: choices follow the validation split', function () {
  this.timeout(300_000);
  let cluster: TestCluster;
  let dir: string;
  before(async () => {
    cluster = await startCluster();
    dir = tmpDir('dt-eval-');
  });
  after(async () => {
    await cluster?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('early stopping and keepBest keep the best validation checkpoint; the test split is only reported', async () => {
    const settings = temporalSettings(cluster.env);
    const { worker, connection } = await createTrainingWorker({
      settings,
      // A name of its own: the unit tests register their 'opposed' data in this same process.
      datasets: { 'opposed-e2e': ({ seed }) => opposedData(seed) },
    });
    const spec = {
      model: { layers: [{ type: 'dense', units: 2 }] },
      dataset: { registered: 'opposed-e2e' },
      epochs: 20,
      batchSize: 16,
      seed: 3,
      optimizer: { name: 'sgd', learningRate: 0.5 },
      checkpoint: { storage: `file://${path.join(dir, 'ck')}`, keepLatest: 1, keepBest: { k: 1, metric: 'loss' } },
      earlyStopping: { metric: 'loss', patience: 1 },
    };
    let result;
    try {
      const run = await startTraining(cluster.client, spec, { runId: 'opposed', settings });
      result = await worker.runUntil(run.result());
    } finally {
      await connection.close();
    }
    assert.equal(result.status, 'stopped-early');
    assert.ok(result.bestCheckpoint, 'the result names its best checkpoint');
    // 4 steps an epoch: it stopped two epochs after the best one, long before its 80 steps.
    assert.equal(result.step, result.bestCheckpoint.step + 8);
    assert.equal(result.validation?.split, 'validation');
    const memo = (await cluster.client.workflow.getHandle('opposed').describe()).memo as { spec: typeof spec };
    assert.equal((memo.spec.dataset as { validationFraction?: number }).validationFraction, 0.1, 'start recorded it');

    const manager = await managerForRun(cluster.client, 'opposed');
    const kept = (await manager.list()).map((c) => c.id);
    assert.ok(kept.includes(result.bestCheckpoint.id), `the best is kept (${kept})`);
    const evaluate = async (id: string, split: string) => {
      const got: Array<{ loss: number; split: string }> = [];
      const out: Out = { json: true, emit: (d) => got.push(d as { loss: number; split: string }) };
      await evaluateCommand(cluster.client, out, { ref: `opposed:${id}`, split });
      return got[0];
    };
    const bestTest = await evaluate(result.bestCheckpoint.id, 'test');
    const lastTest = await evaluate(result.lastCheckpoint!.id, 'test');
    assert.equal(lastTest.loss, result.loss, 'evaluate gives the run its own test number');
    assert.ok(lastTest.loss < bestTest.loss, 'by test, the last checkpoint would have been chosen');
    const bestVal = await evaluate(result.bestCheckpoint.id, 'validation');
    const lastVal = await evaluate(result.lastCheckpoint!.id, 'validation');
    assert.ok(bestVal.loss < lastVal.loss, 'by validation, the best one was');
  });

  it('split files: a run validates on the validation file and tests on the test file', async () => {
    // label x when a > b; the validation file says the opposite, so only it can score low.
    const rows = (n: number, from: number, flip: boolean) =>
      Array.from({ length: n }, (_, k) => {
        const a = ((from + k) * 37) % 101;
        const b = ((from + k) * 61) % 103;
        return `${a},${b},${a > b !== flip ? 'x' : 'y'}`;
      });
    const file = (name: string, lines: string[]) => {
      fs.writeFileSync(path.join(dir, name), ['a,b,label', ...lines].join('\n') + '\n');
      return `file://${path.join(dir, name)}`;
    };
    const settings = temporalSettings(cluster.env);
    const { worker, connection } = await createTrainingWorker({ settings });
    const spec = {
      model: { layers: [{ type: 'dense', units: 2 }] },
      dataset: {
        format: 'csv',
        label: 'label',
        train: file('train.csv', rows(160, 0, false)),
        validation: file('val.csv', rows(30, 500, true)),
        test: file('test.csv', rows(40, 900, false)),
      },
      epochs: 4,
      batchSize: 16,
      seed: 5,
      optimizer: { name: 'sgd', learningRate: 0.5 },
      checkpoint: { storage: `file://${path.join(dir, 'ck-files')}` },
    };
    let result;
    try {
      const run = await startTraining(cluster.client, spec, { runId: 'split-files', settings });
      result = await worker.runUntil(run.result());
    } finally {
      await connection.close();
    }
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 40, '160 training rows, none carved: 10 steps an epoch');
    const got: Array<{ accuracy: number; split: string }> = [];
    const out: Out = { json: true, emit: (d) => got.push(d as { accuracy: number; split: string }) };
    await evaluateCommand(cluster.client, out, { ref: 'split-files', split: 'test' });
    await evaluateCommand(cluster.client, out, { ref: 'split-files', split: 'validation' });
    assert.equal(got[0].accuracy, result.accuracy, 'the result reports the test file');
    assert.ok(got[0].accuracy > 0.8, `learned the rule on the test file: ${got[0].accuracy}`);
    assert.ok(got[1].accuracy < 0.2, `the validation file's opposite labels: ${got[1].accuracy}`);
    assert.equal(result.validation?.accuracy, got[1].accuracy, 'status shows the validation file');
  });
});
