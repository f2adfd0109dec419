// `export --bake-preprocessing` on a functional model (a layer list with a residual `add`): the standardisation goes
// in front of the graph, so plain tfjs and Keras (the TensorFlow wheel) take raw rows and predict what the run
// predicts on its standardised rows.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { withRunDefaults } from '../../spec/helpers';
import { validateSpec } from '../../spec/validate';
import { Trainer } from '../../training';
import { exportModel, restoreNet } from '../../training/export';
import { preprocessingOf } from '../../training/preprocess';
import { loadTaskData } from '../../training/task-data';

const ROOT = path.join(__dirname, '..', '..', '..');

describe('bake preprocessing into a functional model', function () {
  this.timeout(240_000);
  before(async () => assert.ok(await tf.setBackend('cpu')));

  it('a residual model takes raw rows in tfjs and in Keras and predicts what the run does', async () => {
    const spec = withRunDefaults(
      validateSpec({
        model: {
          layers: [
            { type: 'dense', units: 8, activation: 'relu', name: 'a' },
            { type: 'dense', units: 8, activation: 'relu', name: 'b' },
            { type: 'add', inputs: ['a', 'b'], name: 'sum' },
            { type: 'dense', units: 3, activation: 'softmax', name: 'out' },
          ],
        },
        dataset: { name: 'iris' },
        epochs: 3,
        batchSize: 16,
        seed: 3,
        optimizer: { name: 'adam', learningRate: 0.01 },
        checkpoint: { storage: 'file://unused' },
      }),
    );
    const data = await loadTaskData(spec);
    const t = await Trainer.create(spec);
    let tensors;
    try {
      await t.train({ maxSteps: 1000 });
      tensors = t.snapshot().tensors;
    } finally {
      t.dispose();
    }
    const n = data.test.n;
    const net = await restoreNet(spec, tensors, data.featureShape);
    let expected: number[][];
    try {
      expected = tf.tidy(() => tf.softmax(net.forward(tf.tensor2d(data.test.x, [n, 4]))).arraySync() as number[][]);
    } finally {
      net.dispose();
    }
    const { mean, std } = data.normalization!;
    const raw = Array.from({ length: n }, (_, r) =>
      Array.from(data.test.x.subarray(r * 4, r * 4 + 4), (v, j) => v * std[j] + mean[j]),
    );

    const exported = await exportModel(spec, tensors, {
      featureShape: data.featureShape,
      preprocessing: preprocessingOf(spec, data),
      bakePreprocessing: true,
    });
    const file = (name: string) => exported.files.find((f) => f.name === name)!.data;
    const modelJson = JSON.parse(Buffer.from(file('model.json')).toString('utf8'));
    assert.equal(modelJson.modelTopology.class_name, 'Model', 'a functional model');
    assert.equal(JSON.parse(Buffer.from(file('preprocessing.json')).toString('utf8')).baked, true);
    const weights = file('weights.bin');
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: modelJson.modelTopology,
        weightSpecs: modelJson.weightsManifest[0].weights,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      }),
    );
    try {
      assert.ok(model.getLayer('standardize'), 'the standardisation is a layer of the model');
      const viaTfjs = tf.tidy(() => (model.predict(tf.tensor2d(raw)) as tf.Tensor).arraySync() as number[][]);
      viaTfjs.forEach((p, i) => p.forEach((v, c) => assert.ok(Math.abs(v - expected[i][c]) < 1e-5, `tfjs row ${i}`)));
    } finally {
      model.dispose();
    }

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bake-functional-'));
    try {
      for (const f of exported.files) fs.writeFileSync(path.join(dir, f.name), f.data);
      const cases = path.join(dir, 'cases.json');
      fs.writeFileSync(cases, JSON.stringify({ inputs: raw, outputs: expected, tolerance: 1e-5 }));
      const python = path.join(ROOT, '.tools', 'venv', 'bin', 'python');
      const script = path.join(ROOT, 'scripts', 'keras-fixtures', 'check-export.py');
      const line = execFileSync(python, [script, dir, cases], { encoding: 'utf8' }).trim();
      const r = JSON.parse(line) as { ok: boolean; maxAbsDiff: number };
      assert.ok(r.ok && r.maxAbsDiff <= 1e-5, line);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses features that are not rows (images), naming the shape', async () => {
    const spec = validateSpec({
      model: 'mnist-mlp',
      dataset: { name: 'mnist', trainLimit: 64, testLimit: 16 },
      epochs: 1,
      batchSize: 32,
      seed: 1,
      optimizer: { name: 'sgd', learningRate: 0.1 },
      checkpoint: { storage: 'file://unused' },
    });
    const data = await loadTaskData(spec);
    const t = await Trainer.create(spec);
    let tensors;
    try {
      tensors = t.snapshot().tensors;
    } finally {
      t.dispose();
    }
    const pre = { ...preprocessingOf(spec, data), standardization: { mean: [0], std: [1] } };
    await assert.rejects(
      exportModel(spec, tensors, { featureShape: data.featureShape, preprocessing: pre, bakePreprocessing: true }),
      /--bake-preprocessing: features of shape \[28,28,1\]; only rows of features \(rank 1\) bake/,
    );
  });
});
