// Everything checked before start (real dev server, no worker): `start` and the library's startTraining load the
// data, build the model on its shape and refuse a run that cannot work, naming the field, before any workflow exists.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { startTraining } from '../../index';
import { startCommand, watchForWorkers } from '../../cli/start';
import { CliError, EXIT, output, runIdForSpecFile } from '../../cli/common';
import type { TemporalSettings } from '../../cli/connection';
import { SpecError, validateSpec } from '../../spec';
import { register, type RegisteredData } from '../../training/registry';
import { cli, startCluster, waitFor, writeSpec, type TestCluster } from '../helpers/cluster';

const base = {
  epochs: 1,
  batchSize: 16,
  seed: 3,
  optimizer: { name: 'adam', learningRate: 0.01 },
  checkpoint: { storage: 'file://.data/checkpoints' },
};
const mlp = (units: number) => ({
  layers: [
    { type: 'dense', units: 8, activation: 'relu' },
    { type: 'dense', units, ...(units > 1 ? { activation: 'softmax' } : {}) },
  ],
});

/** A table with a numeric target of many distinct values (like scikit-learn's diabetes), for the task hint. */
function numericTargetCsv(file: string): void {
  const lines = ['age,bmi,target'];
  for (let i = 0; i < 120; i++) lines.push(`${(i % 17) / 10},${(i % 11) / 7},${25 + ((i * 37) % 300)}`);
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

/** A registered loader's output with one defect. */
function moons(defect: 'label' | 'nan' | 'ragged'): RegisteredData {
  const split = (n: number) => {
    const x = new Float32Array(n * 2).map((_, i) => (i % 7) / 7);
    const y = Int32Array.from({ length: n }, (_, i) => i % 2);
    return { x, y, n };
  };
  const train = split(40);
  if (defect === 'label') train.y[3] = -1;
  if (defect === 'nan') train.x[2 * 5 + 1] = NaN;
  const test = split(10);
  const ragged = defect === 'ragged' ? { ...test, x: test.x.subarray(0, 19) } : test;
  return {
    featureShape: [2],
    task: 'classification',
    classes: ['a', 'b'],
    train,
    test: ragged,
    fingerprint: `moons-${defect}`,
  };
}

describe('before start: the run is refused, naming the field, and no workflow exists', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let settings: TemporalSettings;

  before(async function () {
    cluster = await startCluster();
    settings = { address: cluster.server.address, namespace: 'default', taskQueue: cluster.taskQueue, uiUrl: null };
    numericTargetCsv(path.join(cluster.dir, 'diabetes.csv'));
    register({
      models: {
        tiny: ({ inputShape, outputs }) =>
          tf.sequential({
            layers: [
              tf.layers.dense({ name: 'hidden', inputShape, units: 4, activation: 'relu' }),
              tf.layers.dense({ name: 'out', units: outputs, activation: 'softmax' }),
            ],
          }),
      },
      datasets: {
        'neg-label': () => moons('label'),
        'nan-feature': () => moons('nan'),
        'ragged-rows': () => moons('ragged'),
      },
    });
  });
  after(async function () {
    await cluster?.close();
  });

  const noWorkflow = async (runId: string) => {
    const exists = await cluster.client.workflow
      .getHandle(runId)
      .describe()
      .then(
        () => true,
        () => false,
      );
    assert.ok(!exists, `no workflow ${runId} on the server`);
  };

  /** The start command's own function, in process: the SpecError it throws (exit 2 in the CLI). */
  const refusal = async (runId: string, spec: object): Promise<SpecError> => {
    const err = await startCommand(cluster.client, settings, output(true), {
      spec: validateSpec({ ...base, ...spec }),
      runId,
    }).then(
      () => assert.fail(`${runId} started`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof SpecError, `${runId}: ${String(err)}`);
    await noWorkflow(runId);
    return err;
  };

  it('start: a freeze name the model does not have (a model built by code: the schema cannot know its layers)', async function () {
    const err = await refusal('freeze', {
      model: { registered: 'tiny' },
      dataset: { name: 'iris' },
      freeze: ['hidden', 'hiden'],
    });
    assert.equal(err.field, 'freeze[1]');
    assert.match(err.message, /no trainable layer "hiden" \(it has: hidden, out\)/);
  });

  it('start: a last layer of 1 unit for a classification task', async function () {
    const err = await refusal('one-unit', { model: mlp(1), dataset: { name: 'iris' } });
    assert.equal(err.field, 'model');
    assert.match(err.message, /last layer gives \[1\] per example; iris needs 3 \(one per class: /);
    assert.match(err.message, /a last layer of 1 unit is for "task": "regression"/);
  });

  it('start: a numeric label with many values read as classes, with the hint', async function () {
    const dataset = { format: 'csv', path: `file://${path.join(cluster.dir, 'diabetes.csv')}`, label: 'target' };
    const err = await refusal('numeric-label', { model: mlp(1), dataset });
    assert.equal(err.field, 'task');
    assert.match(err.message, /a numeric label with \d+ distinct values: did you mean "task": "regression"\?/);
  });

  it('start: split files whose columns differ, naming the file', async function () {
    const f = (name: string, text: string) => {
      fs.writeFileSync(path.join(cluster.dir, name), text);
      return `file://${path.join(cluster.dir, name)}`;
    };
    const dataset = {
      format: 'csv',
      train: f('split-train.csv', 'a,b,label\n1,2,x\n3,4,y\n'),
      test: f('split-test.csv', 'a,c,label\n1,2,x\n'),
      label: 'label',
    };
    // The file check of start (exit 2 in the CLI, EXIT.usage).
    const err = await startCommand(cluster.client, settings, output(true), {
      spec: validateSpec({ ...base, model: mlp(2), dataset }),
      runId: 'split-files',
    }).then(
      () => assert.fail('started'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CliError, String(err));
    assert.equal(err.exitCode, EXIT.usage);
    assert.match(err.message, /invalid spec: dataset\.test: has the features a, c, but dataset\.train has a, b/);
    await noWorkflow('split-files');
  });

  for (const [name, row] of [
    ['neg-label', /train row 3: the label is -1; expected a class index in \[0, 1\]/],
    ['nan-feature', /train row 5: feature 1 is NaN/],
    ['ragged-rows', /test split has 19 feature values for n=10 rows of 2/],
  ] as const) {
    it(`startTraining: a registered loader's ${name} is refused naming the row`, async function () {
      const err = await startTraining(
        cluster.client,
        { ...base, model: mlp(2), dataset: { registered: name } },
        { runId: name, settings },
      ).then(
        () => assert.fail('started'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof SpecError, String(err));
      assert.equal(err.field, 'dataset');
      assert.match(err.message, row);
      await noWorkflow(name);
    });
  }

  it('start --wait says within seconds that no worker polls the task queue, and how to start one', async function () {
    const said: string[] = [];
    const stop = watchForWorkers(cluster.client, settings, (m) => said.push(m), 100);
    try {
      await waitFor('the notice', async () => said.length > 0, 30_000, 50);
    } finally {
      stop();
    }
    assert.match(said[0], new RegExp(`no worker is polling task queue ${cluster.taskQueue}`));
    assert.match(said[0], new RegExp(`DURABLE_TRAIN_TASK_QUEUE=${cluster.taskQueue} durable-train worker`));
  });

  it('the default run id is the spec file name with a short suffix', function () {
    assert.match(runIdForSpecFile('/specs/my diabetes.json'), /^my-diabetes-[a-z0-9]{5}$/);
    assert.notEqual(runIdForSpecFile('a.json'), runIdForSpecFile('a.json'));
  });

  it('the CLI exits 2 naming the field', async function () {
    const spec = writeSpec(cluster.dir, 'one-unit.json', { ...base, model: mlp(1), dataset: { name: 'iris' } });
    const r = cli(cluster, ['start', '--spec', spec, '--run-id', 'cli-one-unit']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /invalid spec: model: the last layer gives \[1\] per example; iris needs 3/);
    assert.doesNotMatch(r.stderr, /looks like you are running TensorFlow\.js/);
    await noWorkflow('cli-one-unit');
  });
});
