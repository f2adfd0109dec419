// task "binary" (one sigmoid unit, binary cross-entropy, labels 0/1) and the evaluation metrics a spec may ask for
// (auc, precision, recall, f1): the metrics against hand-computed and scikit-learn values, the spec's and the data's
// refusals, and the converted Keras binary classifier (Dense(1, sigmoid)) trained on scikit-learn's breast-cancer
// set through the trainer, reporting AUC, and resumed from a snapshot to the uninterrupted weights.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { validateSpec } from '../../spec/schema';
import type { RunSpec, RunSpecInput } from '../../spec/types';
import { Trainer } from '../../training';
import { initBackend } from '../../training/backend';
import { binaryPrf, macroPrf, rocAuc } from '../../training/eval-metrics';
import { exportModel, restoreNet } from '../../training/export';
import type { NamedTensorBytes } from '../../training/trainer-types';
import { execFileSync } from 'child_process';
import { inferenceFromNet } from '../../training/inference';
import { preflight } from '../../training/preflight';
import { preprocessingOf } from '../../training/preprocess';
import { binaryData, loadTaskData } from '../../training/task-data';
import { sigmoidCrossEntropy } from '../../training/losses';
import { choiceMetric } from '../../spec/helpers';
import { assertExactResume } from '../helpers/resume';
import { clearDataCache } from '../../training/data';
import { binarySpec } from '../helpers/breast-cancer';
import { MetricsSegmentWriter } from '../../telemetry/metrics-log';
import { decodeEvent, eventFileOf, readTfRecords } from '../../telemetry/tensorboard';

const base = binarySpec;

describe('evaluation metrics', () => {
  it('AUC by ranks: hand-computed values, ties counted half', () => {
    // Positives 0.35, 0.8 against negatives 0.1, 0.4: pairs won 1 + 2 of 4.
    assert.strictEqual(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75);
    // A tie between a positive and a negative counts 1/2: pairs (0.5 vs 0.5) 0.5 + (0.9 vs 0.5) 1 -> 1.5 of 2.
    assert.strictEqual(rocAuc([0.5, 0.5, 0.9], [0, 1, 1]), 0.75);
    assert.strictEqual(rocAuc([3, 3, 3, 3], [0, 1, 0, 1]), 0.5);
    assert.strictEqual(rocAuc([0.2, 0.3], [1, 1]), null, 'one class only: undefined');
  });

  it('AUC, precision, recall and F1 agree with scikit-learn', () => {
    // Expected values from scikit-learn 1.9.1:
    //   from sklearn.metrics import roc_auc_score, precision_recall_fscore_support
    //   y = [0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1]
    //   s = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.4, 0.9, 0.55, 0.55, 0.3, 0.6, 0.05, 0.4, 0.8]
    //   roc_auc_score(y, s)                                              -> 0.7321428571428572
    //   p = [1 if v > 0.5 else 0 for v in s]
    //   precision_recall_fscore_support(y, p, average='binary')[:3]      -> 0.7142857142857143, 0.625, 0.6666666666666666
    //   yc = [0, 1, 2, 2, 1, 0, 3, 2, 1, 0, 2, 2]; pc = [0, 2, 2, 1, 1, 0, 0, 2, 1, 1, 2, 3]
    //   precision_recall_fscore_support(yc, pc, average='macro', zero_division=0)[:3]
    //                                          -> 0.47916666666666663, 0.4833333333333333, 0.47619047619047616
    const y = [0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1];
    const s = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.4, 0.9, 0.55, 0.55, 0.3, 0.6, 0.05, 0.4, 0.8];
    const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-15, `${a} != ${b}`);
    close(rocAuc(s, y)!, 0.7321428571428572);
    const b = binaryPrf(
      s.map((v) => (v > 0.5 ? 1 : 0)),
      y,
    );
    close(b.precision, 0.7142857142857143);
    close(b.recall, 0.625);
    close(b.f1, 0.6666666666666666);
    const m = macroPrf([0, 2, 2, 1, 1, 0, 0, 2, 1, 1, 2, 3], [0, 1, 2, 2, 1, 0, 3, 2, 1, 0, 2, 2]);
    close(m.precision, 0.47916666666666663);
    close(m.recall, 0.4833333333333333);
    close(m.f1, 0.47619047619047616);
  });
});

describe('task binary: the spec', () => {
  const refusal = (input: RunSpecInput, pattern: RegExp) => assert.throws(() => validateSpec(input), pattern);

  it('accepts binary with crossentropy and its metrics', () => {
    const s = validateSpec(base({ loss: 'crossentropy' }));
    assert.strictEqual(s.task, 'binary');
    assert.deepStrictEqual(s.metrics, ['auc', 'precision', 'recall', 'f1']);
  });

  it('refuses a metric that does not fit the task, naming both, and a loss of another task', () => {
    refusal(
      base({ task: 'regression', metrics: ['auc'], model: { layers: [{ type: 'dense', units: 1 }] } }),
      /metrics\[0\].*auc does not fit task regression/,
    );
    refusal(
      base({ task: 'classification', metrics: ['f1', 'auc'] }),
      /metrics\[1\].*auc does not fit task classification/,
    );
    refusal(base({ task: 'regression', metrics: ['f1'] }), /metrics\[0\].*f1 does not fit task regression/);
    refusal(base({ loss: 'mse' }), /loss.*binary uses crossentropy/);
    refusal(base({ metrics: ['auc', 'auc'] }), /metrics\[1\].*repeats auc/);
    refusal(
      base({
        task: 'regression',
        metrics: [],
        classWeights: { '1': 2 },
        model: { layers: [{ type: 'dense', units: 1 }] },
      }),
      /classWeights.*classification and binary tasks only/,
    );
  });

  it('early stopping and keepBest may watch auc, precision, recall or f1 when the run computes it', () => {
    const s = validateSpec(base({ earlyStopping: { metric: 'auc', patience: 1 } }));
    assert.strictEqual(s.earlyStopping?.metric, 'auc');
    assert.deepStrictEqual(choiceMetric(s, 'auc'), { name: 'valAuc', mode: 'max' });
    assert.deepStrictEqual(choiceMetric(s, 'loss'), { name: 'valLoss', mode: 'min' });
    refusal(
      base({ metrics: ['f1'], earlyStopping: { metric: 'auc' } }),
      /earlyStopping\.metric.*the run does not compute auc: add it to metrics \(\["auc"\]\)/,
    );
    refusal(
      base({ metrics: [], checkpoint: { storage: 'file://unused', keepBest: { k: 1, metric: 'recall' } } }),
      /checkpoint\.keepBest\.metric.*the run does not compute recall/,
    );
  });
});

describe('task binary: data and model checks', function () {
  this.timeout(120_000);
  let dir: string;

  before(async () => {
    await initBackend();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'binary-task-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const csv = (name: string, labels: string[]) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, 'a,b,y\n' + labels.map((l, i) => `${i},${(i * 7) % 5},${l}`).join('\n') + '\n');
    return `file://${file}`;
  };
  const tiny = (file: string): RunSpec =>
    validateSpec(
      base({
        dataset: { format: 'csv', path: file, label: 'y' },
        model: { layers: [{ type: 'dense', units: 1, activation: 'sigmoid' }] },
        batchSize: 2,
      }),
    );

  it('reads labels 0 and 1 (1.0 too) as the classes ["0", "1"], and refuses another label naming its line', async () => {
    const labels = ['0', '1.0', '1', '0', '1', '0', '1', '1', '0', '0'];
    const data = await loadTaskData(tiny(csv('ok.csv', labels)));
    assert.strictEqual(data.task, 'binary');
    assert.deepStrictEqual(data.classes, ['0', '1']);
    assert.strictEqual(data.outputs, 1);
    const all = [...data.train.y, ...data.test.y, ...(data.validation?.y ?? [])].sort();
    assert.deepStrictEqual(all, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    // Only ones: still 1 (not the index of the only class), and refused at start: nothing to tell apart.
    const onesSpec = tiny(csv('ones.csv', Array(10).fill('1')));
    const ones = await loadTaskData(onesSpec);
    assert.ok([...ones.train.y].every((v) => v === 1));
    await assert.rejects(
      preflight(onesSpec),
      /dataset\.label: the 8 training rows of .* all have label 1: binary needs both/,
    );
    clearDataCache();
    await assert.rejects(
      loadTaskData(tiny(csv('bad.csv', ['0', '1', '0', '2', '1', '0', '1', '0', '1', '1']))),
      /dataset\.label: "y" at line 5 of .*bad\.csv has the value "2", but task binary needs labels 0 and 1/,
    );
  });

  it("a registered loader's binary labels: values 0/1 kept, another refused naming the split, row and value", () => {
    const split = (y: number[]) => ({ x: new Float32Array(y.length), y: Float32Array.from(y), n: y.length });
    const d = {
      name: 'reg',
      featureShape: [1],
      featureSize: 1,
      featureNames: null,
      task: 'binary' as const,
      classes: null,
      normalization: null,
      fingerprint: 'f',
      bytesRead: 0,
      train: split([0, 1, 1]),
      test: split([1, 0]),
    };
    const ok = binaryData(d);
    assert.deepStrictEqual([...ok.train.y], [0, 1, 1]);
    assert.deepStrictEqual(ok.classes, ['0', '1']);
    assert.throws(() => binaryData({ ...d, test: split([1, 0.5]) }), /reg, test row 1: the label is 0\.5; task binary/);
  });

  it('refuses at start a model whose output does not fit: 3 units, or a softmax of one', async () => {
    await assert.rejects(
      preflight(validateSpec(base({ model: { layers: [{ type: 'dense', units: 3, activation: 'softmax' }] } }))),
      /model: the last layer gives \[3\] per example; .* needs 1 \(the probability of label 1, a sigmoid unit\)/,
    );
    await assert.rejects(
      preflight(validateSpec(base({ model: { layers: [{ type: 'dense', units: 1, activation: 'softmax' }] } }))),
      /model: the last layer .* is a softmax of one unit, always 1: task binary wants activation sigmoid/,
    );
    // The converted Keras classifier (Dense(1, sigmoid)) fits.
    assert.deepStrictEqual((await preflight(validateSpec(base()))).skipped, []);
  });
});

describe('task binary: the converted Keras classifier on breast-cancer', function () {
  this.timeout(300_000);

  before(async () => {
    await initBackend();
  });

  const spec = validateSpec(base());
  /** What the training test leaves for the export test: the weights and the test loss. */
  let trained: { tensors: NamedTensorBytes[]; testLoss: number } | null = null;

  it('trains to a test accuracy above 0.9 with AUC reported, and predicts probabilities of its sigmoid', async () => {
    const t = await Trainer.create(spec);
    let tensors;
    try {
      // The fixture's weights are Keras's random initialisation: training is what gets past the floor.
      assert.ok(t.evaluate('test').accuracy! < 0.8);
      const r = await t.train({ maxSteps: 1_000_000 });
      assert.ok(t.done);
      const validation = r.evals.filter((e) => e.split === 'validation');
      assert.strictEqual(validation.length, spec.epochs);
      for (const e of validation) for (const k of ['auc', 'precision', 'recall', 'f1'] as const) assert.ok(k in e, k);
      const test = t.evaluate('test');
      assert.ok(test.accuracy! > 0.9, `test accuracy ${test.accuracy}`);
      assert.ok(test.auc! > 0.95 && test.auc! <= 1, `test auc ${test.auc}`);
      assert.ok(test.f1! > 0.9 && test.precision! > 0.85 && test.recall! > 0.85, JSON.stringify(test));
      tensors = t.snapshot().tensors;
      trained = { tensors, testLoss: test.loss };
      // The forward pass gives logits: the model's own sigmoid output is their sigmoid.
      const data = await loadTaskData(spec);
      const net = await restoreNet(spec, tensors, data.featureShape, undefined, 1);
      const x = tf.tensor2d(data.test.x.subarray(0, 5 * 30), [5, 30]);
      try {
        const logits = tf.tidy(() => net.forward(x).dataSync());
        const probs = (net.model.predict(x) as tf.Tensor).dataSync();
        for (let i = 0; i < 5; i++) assert.ok(Math.abs(1 / (1 + Math.exp(-logits[i])) - probs[i]) < 1e-6);
        const inference = inferenceFromNet(net, preprocessingOf(spec, data));
        const rows = data.test.x.subarray(0, 5 * 30).slice();
        // inferenceFromNet standardises raw rows: give it raw values back.
        const norm = data.normalization!;
        for (let r = 0; r < 5; r++)
          for (let j = 0; j < 30; j++) rows[r * 30 + j] = rows[r * 30 + j] * norm.std[j] + norm.mean[j];
        const preds = inference.predictFeatures(rows, 5);
        preds.forEach((p, i) => {
          assert.ok(Math.abs(p.probabilities![1] - probs[i]) < 1e-5, `${p.probabilities} vs ${probs[i]}`);
          assert.strictEqual(p.class, probs[i] > 0.5 ? '1' : '0');
        });
      } finally {
        x.dispose();
        net.dispose();
      }
    } finally {
      t.dispose();
    }
  });

  it("its export predicts the same in Keras (the TensorFlow wheel), whose binary cross-entropy is the run's loss", async () => {
    assert.ok(trained, 'the training test ran first');
    const data = await loadTaskData(spec);
    const net = await restoreNet(spec, trained.tensors, data.featureShape, undefined, 1);
    const n = data.test.n;
    let probs: Float32Array;
    try {
      probs = tf.tidy(() => tf.sigmoid(net.forward(tf.tensor2d(data.test.x, [n, 30]))).dataSync() as Float32Array);
    } finally {
      net.dispose();
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'binary-export-'));
    try {
      const exported = await exportModel(spec, trained.tensors, { featureShape: data.featureShape });
      for (const f of exported.files) fs.writeFileSync(path.join(dir, f.name), f.data);
      const inputs = Array.from({ length: n }, (_, r) => Array.from(data.test.x.subarray(r * 30, (r + 1) * 30)));
      const cases = path.join(dir, 'cases.json');
      const outputs = Array.from(probs, (p) => [p]);
      fs.writeFileSync(cases, JSON.stringify({ inputs, outputs, labels: Array.from(data.test.y), tolerance: 1e-5 }));
      const python = path.join(__dirname, '..', '..', '..', '.tools', 'venv', 'bin', 'python');
      const script = path.join(__dirname, '..', '..', '..', 'scripts', 'keras-fixtures', 'check-export.py');
      const line = execFileSync(python, [script, dir, cases], { encoding: 'utf8' }).trim();
      const r = JSON.parse(line) as { ok: boolean; maxAbsDiff: number; kerasLoss: number };
      assert.ok(r.ok && r.maxAbsDiff <= 1e-5, line);
      // Keras computes it in float32 from clipped probabilities, the run in float64 from the logits.
      assert.ok(Math.abs(r.kerasLoss - trained.testLoss) < 1e-5, `Keras ${r.kerasLoss} vs ${trained.testLoss}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an interrupted run restored from its snapshot ends with the uninterrupted weights and metrics', async () => {
    const spec = validateSpec(base({ epochs: 2 }));
    const full = await Trainer.create(spec);
    let expected: string;
    let expectedEvals;
    try {
      await full.train({ maxSteps: 1_000_000 });
      expected = full.weightsSha256();
      expectedEvals = structuredClone(full.state.metrics.evals);
    } finally {
      full.dispose();
    }
    const first = await Trainer.create(spec);
    let snap;
    try {
      await first.train({ maxSteps: 17 }); // mid-epoch (13 steps per epoch)
      snap = first.snapshot();
    } finally {
      first.dispose();
    }
    const resumed = await Trainer.fromSnapshot(spec, snap);
    try {
      await resumed.train({ maxSteps: 1_000_000 });
      assert.ok(resumed.done);
      assert.strictEqual(resumed.weightsSha256(), expected);
      assert.deepStrictEqual(resumed.state.metrics.evals, expectedEvals);
    } finally {
      resumed.dispose();
    }
  });
});

describe('classification: macro precision, recall and f1 when asked', function () {
  this.timeout(120_000);

  before(async () => {
    await initBackend();
  });

  const iris = (metrics?: RunSpecInput['metrics']) =>
    validateSpec({
      model: {
        layers: [
          { type: 'dense', units: 8, activation: 'relu' },
          { type: 'dense', units: 3 },
        ],
      },
      dataset: { name: 'iris', validationFraction: 0.1 },
      ...(metrics ? { metrics } : {}),
      epochs: 2,
      batchSize: 16,
      seed: 7,
      optimizer: { name: 'adam', learningRate: 0.01 },
      checkpoint: { storage: 'file://unused' },
    });

  it('adds them to every evaluation, computed from the predictions, and changes nothing else', async () => {
    const results = [];
    for (const spec of [iris(), iris(['precision', 'recall', 'f1'])]) {
      const t = await Trainer.create(spec);
      try {
        const r = await t.train({ maxSteps: 1_000_000 });
        const test = t.evaluate('test');
        const data = await loadTaskData(spec);
        const net = await restoreNet(spec, t.snapshot().tensors, data.featureShape, undefined, 3);
        let predicted: number[];
        try {
          const out = tf.tidy(() => tf.argMax(net.forward(tf.tensor2d(data.test.x, [data.test.n, 4])), 1).dataSync());
          predicted = Array.from(out);
        } finally {
          net.dispose();
        }
        results.push({ test, evals: r.evals, hash: t.weightsSha256(), expected: macroPrf(predicted, data.test.y) });
      } finally {
        t.dispose();
      }
    }
    const [plain, asked] = results;
    assert.deepStrictEqual(Object.keys(plain.test), ['loss', 'accuracy'], 'a run without metrics: as before');
    assert.strictEqual(asked.hash, plain.hash);
    assert.deepStrictEqual({ loss: asked.test.loss, accuracy: asked.test.accuracy }, plain.test);
    assert.deepStrictEqual(
      { precision: asked.test.precision, recall: asked.test.recall, f1: asked.test.f1 },
      asked.expected,
    );
    assert.deepStrictEqual(
      asked.evals.map((e) => e.split),
      ['validation', 'validation', 'test'],
    );
    for (const e of asked.evals) assert.ok(typeof e.f1 === 'number' && typeof e.precision === 'number', `${e.split}`);
  });
});

describe('task binary: class weights and choices on auc', function () {
  this.timeout(120_000);
  before(async () => {
    await initBackend();
  });

  it('a class weight scales its examples in the binary cross-entropy (0: the class is ignored)', () => {
    const logits = tf.tensor2d([[2], [-1], [0.5]]);
    const y = tf.tensor2d([[1], [0], [0]]);
    const terms = [Math.log1p(Math.exp(-2)), Math.log1p(Math.exp(-1)), Math.log1p(Math.exp(0.5))];
    const got = sigmoidCrossEntropy(logits, y, tf.tensor2d([[3], [1], [0]])).dataSync()[0];
    assert.ok(Math.abs(got - (3 * terms[0] + terms[1]) / 3) < 1e-6, `${got}`);
    const plain = sigmoidCrossEntropy(logits, y).dataSync()[0];
    assert.ok(Math.abs(plain - (terms[0] + terms[1] + terms[2]) / 3) < 1e-6, `${plain}`);
    tf.dispose([logits, y]);
  });

  it('classWeights on a binary run: weight 0 for class 1 teaches the model to say 0 (recall falls); balanced trains and resumes exactly', async () => {
    const testOf = async (over: Partial<RunSpecInput>) => {
      const t = await Trainer.create(validateSpec(base({ epochs: 2, ...over })));
      try {
        await t.train({ maxSteps: 1_000_000 });
        return t.evaluate('test');
      } finally {
        t.dispose();
      }
    };
    const plain = await testOf({});
    const ignored = await testOf({ classWeights: { '1': 0 } });
    // Without its benign (1) rows' loss, the model learns to call rows malignant: it finds fewer benign ones.
    assert.ok(
      ignored.recall! < plain.recall! - 0.1,
      `benign rows found: recall ${ignored.recall} vs ${plain.recall} unweighted`,
    );
    assert.ok(ignored.precision! >= plain.precision!, 'those it calls benign are benign');
    await assertExactResume(validateSpec(base({ classWeights: 'balanced', epochs: 2 })), 7);
  });

  it('early stopping on validation auc stops at the first epoch without a higher auc and names the best', async () => {
    const spec = validateSpec(base({ epochs: 12, earlyStopping: { metric: 'auc', patience: 0 } }));
    const t = await Trainer.create(spec);
    try {
      const r = await t.train({ maxSteps: 1_000_000 });
      const vals = r.state.metrics.evals.filter((e) => e.split === 'validation');
      const aucs = vals.map((e) => e.auc!);
      // It stopped at the first epoch whose auc was no higher than the best before it, and not before.
      const stop = aucs.findIndex((a, i) => i > 0 && a <= Math.max(...aucs.slice(0, i)));
      assert.ok(stop > 0 && stop === vals.length - 1, `stopped after ${vals.length} of 12 epochs: ${aucs}`);
      assert.ok(t.stoppedEarly, 'stopped early');
      const best = Math.max(...aucs);
      assert.strictEqual(r.state.metrics.earlyStopping?.best, best);
      assert.strictEqual(r.state.metrics.earlyStopping?.bestStep, vals[aucs.indexOf(best)].step);
    } finally {
      t.dispose();
    }
  });
});

describe('binary metrics in the metrics log and TensorBoard', () => {
  it("an evaluation's auc, precision, recall and f1 are kept by the log and written as validation/ and test/ scalars", () => {
    const w = new MetricsSegmentWriter('b', 0, { rawSteps: 8, continues: false });
    w.record({ step: 1, loss: 0.5, accuracy: 0.75, learningRate: 0.01, samplesPerSec: 10 });
    const extra = { auc: 0.875, precision: 0.5, recall: 0.25, f1: 1 / 3 };
    w.recordEval({ epoch: 0, step: 1, split: 'validation', loss: 0.4, accuracy: 0.8, ...extra });
    w.recordEval({ epoch: 0, step: 1, split: 'test', loss: 0.3, accuracy: 0.9, ...extra, auc: null });
    const seg = w.cut(1, 1);
    assert.deepStrictEqual(
      seg.evals.map((e) => e.auc),
      [0.875, null],
    );
    const scalars = readTfRecords(eventFileOf(seg, { wallTime: 1 }))
      .map(decodeEvent)
      .reduce<Record<string, number>>((a, e) => ({ ...a, ...e.scalars }), {});
    assert.strictEqual(scalars['validation/auc'], 0.875);
    assert.strictEqual(scalars['validation/f1'], Math.fround(1 / 3));
    assert.strictEqual(scalars['test/recall'], 0.25);
    assert.ok(!('test/auc' in scalars), 'an undefined auc (one class in the split) is not written');
  });
});
