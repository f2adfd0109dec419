// Preprocessing travels with the model (real dev server, one real worker): a run on a CSV records its feature names,
// standardisation and classes in its checkpoints; `predict` on raw rows gives what the run's own evaluation gives;
// an export with --bake-preprocessing takes raw rows in plain @tensorflow/tfjs and in Keras.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadForInference, startTraining } from '../../index';
import { exportCommand } from '../../cli/export';
import { predictCommand } from '../../cli/predict';
import { CliError, type Out } from '../../cli/common';
import type { TemporalSettings } from '../../cli/connection';
import { PROJECT_ROOT } from '../../cli/tools';
import { validateSpec } from '../../spec';
import { applyNormalization } from '../../training/data';
import { restoreNet } from '../../training/export';
import { loadTaskData } from '../../training/task-data';
import { withRunDefaults } from '../../spec/helpers';
import type { Preprocessing } from '../../training/preprocess';
import type { RunResult } from '../../workflows/progress';
import { useCluster } from '../helpers/fixtures';

/** Three classes around different centres in 4 features of different scales; labels are strings. */
function flowersCsv(rows: number): string {
  let s = 7;
  const r = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const centres: Record<string, number[]> = { a: [10, 0.1, 300, -2], b: [14, 0.3, 250, 0], c: [8, 0.2, 350, 2] };
  const lines = ['width,ratio,label,mass,tilt'];
  for (let i = 0; i < rows; i++) {
    const name = 'abc'[i % 3];
    const [w, q, m, t] = centres[name].map((c, j) => c + (r() - 0.5) * [6, 0.3, 120, 4][j]);
    lines.push(`${w.toFixed(3)},${q.toFixed(4)},${name},${m.toFixed(2)},${t.toFixed(3)}`);
  }
  return lines.join('\n') + '\n';
}

/** Command output, kept quiet: the tests read the files the commands write. */
const quiet: Out = { json: true, emit: () => undefined };

const PYTHON = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'python');

describe('predict and export: preprocessing travels with the model', function () {
  this.timeout(300_000);
  const fx = useCluster();
  let settings: TemporalSettings;
  let dir: string;
  let result: RunResult;
  let spec: ReturnType<typeof validateSpec>;
  /** Raw test-split rows (csv lines with the label), and the run's own probabilities for them. */
  let testCsv: string;
  let expected: number[][];
  let labels: number[];

  before(async function () {
    const cluster = fx.cluster;
    dir = cluster.dir;
    settings = { address: cluster.server.address, namespace: 'default', taskQueue: cluster.taskQueue, uiUrl: null };
    const csv = flowersCsv(300);
    fs.writeFileSync(path.join(dir, 'flowers.csv'), csv);
    spec = validateSpec({
      model: {
        layers: [
          { type: 'dense', units: 16, activation: 'relu' },
          { type: 'dense', units: 3, activation: 'softmax' },
        ],
      },
      dataset: { format: 'csv', path: `file://${path.join(dir, 'flowers.csv')}`, label: 'label' },
      epochs: 3,
      batchSize: 16,
      seed: 9,
      optimizer: { name: 'adam', learningRate: 0.01 },
      checkpoint: { storage: `file://${path.join(dir, 'ckpt')}` },
    });
    await fx.worker();
    const run = await startTraining(cluster.client, spec, { runId: 'flowers', settings });
    result = await run.result();
    assert.equal(result.status, 'completed');

    // The run's own evaluation of its test split: the checkpoint's weights in our forward pass on the loader's rows
    // (of the spec as start recorded it, with its defaults).
    const data = await loadTaskData(withRunDefaults(spec));
    const raw = csv.trim().split('\n').slice(1);
    const byKey = new Map<string, string>();
    for (const line of raw) {
      const f = line.split(',');
      const x = Float32Array.from([f[0], f[1], f[3], f[4]].map(Number));
      applyNormalization(x, 4, data.normalization!);
      byKey.set(Buffer.from(x.buffer).toString('hex'), line);
    }
    const lines: string[] = [];
    for (let i = 0; i < data.test.n; i++) {
      const key = Buffer.from(data.test.x.slice(i * 4, i * 4 + 4).buffer).toString('hex');
      assert.ok(byKey.has(key), `test row ${i} is a row of the file`);
      lines.push(byKey.get(key)!);
    }
    testCsv = ['width,ratio,label,mass,tilt', ...lines].join('\n') + '\n';
    labels = Array.from(data.test.y);
    const { CheckpointManager, openStore } = await import('../../checkpoint');
    const manager = new CheckpointManager(openStore(spec.checkpoint.storage), 'flowers');
    const latest = await manager.latestValid();
    assert.ok(latest, 'a checkpoint');
    const loaded = await manager.load(latest.manifest.id);
    const tensors = loaded.manifest.blobs.map((b) => ({
      name: b.name,
      dtype: b.dtype as 'float32',
      shape: b.shape,
      data: loaded.blobs.get(b.name)!,
    }));
    const net = await restoreNet(spec, tensors, [4], undefined, 3);
    expected = tf.tidy(
      () => tf.softmax(net.forward(tf.tensor2d(data.test.x, [data.test.n, 4]))).arraySync() as number[][],
    );
    net.dispose();
    const recorded = (loaded.manifest.state as { preprocessing: Preprocessing }).preprocessing;
    assert.deepEqual(recorded.featureNames, ['width', 'ratio', 'mass', 'tilt']);
    assert.deepEqual(recorded.classes, ['a', 'b', 'c']);
    assert.deepEqual(recorded.standardization, data.normalization, 'the statistics of the training rows');
  });

  const readPreds = (file: string) => {
    const [head, ...rows] = fs.readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(head, 'class,p_a,p_b,p_c');
    return rows.map((r) => r.split(',')).map(([c, ...p]) => ({ cls: c, p: p.map(Number) }));
  };

  it("predict on raw csv rows gives the run's own classes and probabilities (its test accuracy and loss)", async function () {
    const input = path.join(dir, 'test-rows.csv');
    fs.writeFileSync(input, testCsv);
    const out = path.join(dir, 'preds.csv');
    await predictCommand(fx.cluster.client, quiet, { ref: 'flowers', input, out });
    const preds = readPreds(out);
    assert.equal(preds.length, expected.length);
    let correct = 0;
    let loss = 0;
    preds.forEach((pr, i) => {
      pr.p.forEach((v, c) =>
        assert.ok(Math.abs(v - expected[i][c]) < 1e-6, `row ${i} class ${c}: ${v} vs ${expected[i][c]}`),
      );
      const want = expected[i].indexOf(Math.max(...expected[i]));
      assert.equal(pr.cls, 'abc'[want]);
      if (want === labels[i]) correct++;
      loss -= Math.log(pr.p[labels[i]]);
    });
    assert.equal(correct / preds.length, result.accuracy, "the run's test accuracy");
    assert.ok(Math.abs(loss / preds.length - result.loss!) < 1e-4, `loss ${loss / preds.length} vs ${result.loss}`);

    // jsonl rows, columns in any order, give the same
    const jsonl = testCsv
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','))
      .map(([w, r, , m, t]) => JSON.stringify({ tilt: +t, mass: +m, width: +w, ratio: +r }))
      .join('\n');
    fs.writeFileSync(path.join(dir, 'rows.jsonl'), jsonl + '\n');
    const model = await loadForInference({ run: 'flowers', client: fx.cluster.client });
    const viaJsonl = await model.predictFile(path.join(dir, 'rows.jsonl'));
    model.dispose();
    viaJsonl.forEach((pr, i) => assert.deepEqual(pr.probabilities, preds[i].p));
  });

  it('predict refuses rows with a missing or an extra column, naming it (exit 2)', async function () {
    const cases: Array<[string, RegExp]> = [
      ['width,label,mass,tilt\n1,a,2,3\n', /no column "ratio"/],
      [
        'width,ratio,mass,tilt,colour\n1,2,3,4,5\n',
        /unknown column "colour" \(the model takes: width, ratio, mass, tilt/,
      ],
    ];
    for (const [i, [text, message]] of cases.entries()) {
      const input = path.join(dir, `bad-${i}.csv`);
      fs.writeFileSync(input, text);
      const err = await predictCommand(fx.cluster.client, quiet, { ref: 'flowers', input }).then(
        () => assert.fail('predicted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof CliError, String(err));
      assert.equal(err.exitCode, 2);
      assert.match(err.message, message);
    }
  });

  it('export --bake-preprocessing: plain @tensorflow/tfjs and Keras predict the same on raw rows', async function () {
    const out = path.join(dir, 'baked');
    await exportCommand(fx.cluster.client, quiet, { ref: 'flowers', out, bakePreprocessing: true });
    const pre = JSON.parse(fs.readFileSync(path.join(out, 'preprocessing.json'), 'utf8'));
    assert.equal(pre.baked, true);
    assert.deepEqual(pre.featureNames, ['width', 'ratio', 'mass', 'tilt']);
    const rows = testCsv
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','))
      .map(([w, r, , m, t]) => [+w, +r, +m, +t]);

    // plain tfjs, from memory (no file:// handler in @tensorflow/tfjs)
    const modelJson = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
    const weightData = new Uint8Array(fs.readFileSync(path.join(out, 'weights.bin'))).buffer;
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: modelJson.modelTopology,
        weightSpecs: modelJson.weightsManifest[0].weights,
        weightData,
      }),
    );
    const viaTfjs = tf.tidy(() => (model.predict(tf.tensor2d(rows)) as tf.Tensor).arraySync() as number[][]);
    model.dispose();
    viaTfjs.forEach((p, i) => p.forEach((v, c) => assert.ok(Math.abs(v - expected[i][c]) < 1e-5, `tfjs row ${i}`)));

    // the library's loader on the same directory
    const loaded = await loadForInference(out);
    const viaLoader = loaded.predict(rows.map(([width, ratio, mass, tilt]) => ({ width, ratio, mass, tilt })));
    loaded.dispose();
    viaLoader.forEach((p, i) => assert.deepEqual(p.probabilities, viaTfjs[i]));

    // Keras (the TensorFlow wheel of the tool venv)
    const r = spawnSync(PYTHON, [path.join(PROJECT_ROOT, 'test', 'helpers', 'keras_predict.py'), out], {
      input: JSON.stringify(rows),
      encoding: 'utf8',
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' },
      timeout: 240_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const viaKeras = JSON.parse(r.stdout.trim().split('\n').pop()!) as number[][];
    viaKeras.forEach((p, i) => p.forEach((v, c) => assert.ok(Math.abs(v - expected[i][c]) < 1e-5, `keras row ${i}`)));
  });
});
