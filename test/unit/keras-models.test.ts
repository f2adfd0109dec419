// Keras models converted by the tensorflowjs converter (test/fixtures/keras, made by scripts/keras-fixtures/make.py):
// Keras 3 and tf_keras files load with their weights, train through the real trainer with their L2 regularizer in the
// loss, and an interrupted run restored from its snapshot ends with the uninterrupted weights. What the training loop
// cannot do (unknown constraints and regularizers, unsupported layers) is refused naming the layer and the field.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type { RunSpec } from '../../spec/types';
import { Trainer } from '../../training';
import { initBackend } from '../../training/backend';
import { loadTfjsModel } from '../../training/tfjs-model';
import { exportModel, restoreNet } from '../../training/export';
import { constrained } from '../../training/penalties';
import { assertExactResume } from '../helpers/resume';
import { execFileSync } from 'child_process';

const FIXTURES = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'keras');
const url = (name: string) => `file://${path.join(FIXTURES, name, 'model.json')}`;

const specFor = (name: string): RunSpec =>
  ({
    model: { tfjs: url(name) },
    dataset: { name: 'mnist', trainLimit: 96, testLimit: 32 },
    epochs: 1,
    batchSize: 16,
    seed: 7,
    optimizer: { name: 'adam', learningRate: 1e-3 },
    chunkSteps: 3,
    chunkSeconds: 60,
    checkpoint: { storage: 'file://unused' },
  }) as RunSpec;

/** The fixture's weights as the converter wrote them: name -> values, from the manifest and the shard. */
function fileWeights(name: string): Map<string, Float32Array> {
  const json = JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const group = json.weightsManifest[0];
  const bin = fs.readFileSync(path.join(FIXTURES, name, group.paths[0]));
  const out = new Map<string, Float32Array>();
  let offset = 0;
  for (const w of group.weights) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    out.set(w.name, new Float32Array(bin.buffer.slice(bin.byteOffset + offset, bin.byteOffset + offset + 4 * n)));
    offset += 4 * n;
  }
  return out;
}

describe('converted Keras models', function () {
  this.timeout(300_000);

  before(async () => {
    await initBackend();
  });

  it('Keras 3 and tf_keras files load with their weights, mapped from either naming', async () => {
    for (const [name, kernel] of [
      ['mlp-bn-l2', 'layers/dense/vars/0'],
      ['mlp-bn-l2-tfk', 'feat1/kernel'],
    ] as const) {
      const loaded = await loadTfjsModel(url(name));
      try {
        assert.ok(loaded.pretrained);
        assert.deepStrictEqual(
          loaded.penalties.map((p) => [p.weight, p.l2 > 0.00099 && p.l2 < 0.00101]),
          [['feat1/kernel', true]],
        );
        const w = loaded.model.getLayer('feat1').getWeights()[0].dataSync();
        assert.deepStrictEqual(Array.from(w), Array.from(fileWeights(name).get(kernel)!), name);
        const bn = loaded.model.getLayer('bn1').getConfig() as { axis: number };
        assert.strictEqual(bn.axis === -1 || bn.axis === 1, true);
      } finally {
        loaded.model.dispose();
      }
    }
    // DepthwiseConv2D and SeparableConv2D: Keras 3's storage paths, the converter's layer paths (Keras 3 calls a
    // depthwise kernel `kernel`) and tf_keras's names (`depthwise_kernel`) load the same weights.
    const sep = fileWeights('separable-cnn');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keras-sep-'));
    const json = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'separable-cnn', 'model.json'), 'utf8'));
    const shard = json.weightsManifest[0].paths[0] as string;
    fs.copyFileSync(path.join(FIXTURES, 'separable-cnn', shard), path.join(dir, shard));
    // Each naming in its own model.json beside a copy of the shard (the names build on the previous ones).
    const renamed = (file: string, names: Record<string, string>) => {
      for (const w of json.weightsManifest[0].weights) w.name = names[w.name] ?? w.name;
      fs.writeFileSync(path.join(dir, file), JSON.stringify(json));
      return `file://${path.join(dir, file)}`;
    };
    try {
      for (const [source, naming] of [
        [url('separable-cnn'), 'Keras 3 storage paths'],
        [renamed('keras3.json', { 'layers/depthwise_conv2d/vars/0': 'dw1/kernel' }), 'Keras 3 layer path'],
        [
          renamed('tfk.json', {
            'dw1/kernel': 'dw1/depthwise_kernel',
            'layers/separable_conv2d/vars/0': 'sep1/depthwise_kernel',
          }),
          'tf_keras',
        ],
      ] as const) {
        const loaded = await loadTfjsModel(source);
        try {
          const [dw] = loaded.model.getLayer('dw1').getWeights();
          const [sdw, spw, sb] = loaded.model.getLayer('sep1').getWeights();
          const file = (n: string) => Array.from(sep.get(`layers/${n}`)!);
          assert.deepStrictEqual(Array.from(dw.dataSync()), file('depthwise_conv2d/vars/0'), naming);
          assert.deepStrictEqual(Array.from(sdw.dataSync()), file('separable_conv2d/vars/0'), naming);
          assert.deepStrictEqual(Array.from(spw.dataSync()), file('separable_conv2d/vars/1'), naming);
          assert.deepStrictEqual(Array.from(sb.dataSync()), file('separable_conv2d/vars/2'), naming);
          assert.deepStrictEqual(spw.shape, [1, 1, 8, 8]);
        } finally {
          loaded.model.dispose();
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const cnn = await loadTfjsModel(url('cnn'));
    try {
      const k = cnn.model.getLayer('conv2').getWeights()[0].dataSync();
      assert.deepStrictEqual(Array.from(k), Array.from(fileWeights('cnn').get('layers/conv2d_1/vars/0')!));
    } finally {
      cnn.model.dispose();
    }
  });

  for (const name of ['mlp-bn-l2', 'cnn', 'mlp-bn-l2-tfk', 'separable-cnn']) {
    it(`${name}: trains through the trainer and resumes from a snapshot to the uninterrupted weights`, async () => {
      const spec = specFor(name);
      const full = await Trainer.create(spec);
      let expected: string;
      try {
        await full.train({ maxSteps: 6 });
        assert.ok(full.done);
        expected = full.weightsSha256();
      } finally {
        full.dispose();
      }
      const first = await Trainer.create(spec);
      let snap;
      try {
        await first.train({ maxSteps: 2 });
        snap = first.snapshot();
      } finally {
        first.dispose();
      }
      const resumed = await Trainer.fromSnapshot(spec, snap);
      try {
        await resumed.train({ maxSteps: 4 });
        assert.strictEqual(resumed.weightsSha256(), expected);
      } finally {
        resumed.dispose();
      }
    });
  }

  it('adds the L2 penalty to the training loss, exactly as Keras defines it', async () => {
    const spec = specFor('mlp-bn-l2'); // the first step's loss is computed before any update
    const withPenalty = await Trainer.create(spec);
    const net = (
      withPenalty as unknown as { net: { penalties: Array<{ l2: number; param: { variable: tf.Variable } }> } }
    ).net;
    try {
      const [p] = net.penalties;
      const w = p.param.variable.dataSync();
      let sum = 0;
      for (const v of w) sum += v * v;
      const penalty = p.l2 * sum;
      assert.ok(penalty > 1e-4, `penalty ${penalty}`);
      const reported: Array<number | undefined> = [];
      await withPenalty.train({ maxSteps: 1, onStep: (s) => void reported.push(s.regularizationLoss) });
      const lossWith = withPenalty.state.metrics.lastLoss!;
      // Reported on its own for the curves (train/regularization_loss).
      assert.ok(Math.abs(reported[0]! - penalty) < 1e-6, `reported ${reported[0]} vs ${penalty}`);
      // The same first batch and weights without the penalty.
      const again = await Trainer.create(spec);
      try {
        (again as unknown as { net: { penalties: unknown[] } }).net.penalties = [];
        await again.train({ maxSteps: 1, onStep: (s) => void reported.push(s.regularizationLoss) });
        assert.strictEqual(reported[1], undefined, 'none without regularizers');
        const lossWithout = again.state.metrics.lastLoss!;
        assert.ok(Math.abs(lossWith - lossWithout - penalty) < 1e-5, `${lossWith} - ${lossWithout} vs ${penalty}`);
      } finally {
        again.dispose();
      }
    } finally {
      withPenalty.dispose();
    }
  });

  it('an export of a trained fixture loads back in Keras (the TensorFlow wheel) and predicts what durable-train does', async () => {
    const python = path.join(__dirname, '..', '..', '..', '.tools', 'venv', 'bin', 'python');
    const script = path.join(__dirname, '..', '..', '..', 'scripts', 'keras-fixtures', 'check-export.py');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keras-export-'));
    const args: string[] = [script];
    try {
      for (const name of ['mlp-bn-l2', 'cnn', 'separable-cnn']) {
        const spec = specFor(name);
        const t = await Trainer.create(spec);
        let tensors;
        try {
          await t.train({ maxSteps: 3 });
          tensors = t.snapshot().tensors;
        } finally {
          t.dispose();
        }
        const exported = await exportModel(spec, tensors);
        const out = path.join(dir, name);
        fs.mkdirSync(out);
        for (const f of exported.files) fs.writeFileSync(path.join(out, f.name), f.data);
        // durable-train's predictions: its own forward pass (inference) over the restored weights, softmax applied.
        const net = await restoreNet(spec, tensors, [28, 28, 1]);
        const inputs: number[][][][] = [];
        let outputs: number[][];
        try {
          for (let i = 0; i < 4; i++)
            inputs.push(
              Array.from({ length: 28 }, (_, r) =>
                Array.from({ length: 28 }, (_, c) => [((r * 7 + c * 3 + i * 11) % 17) / 16]),
              ),
            );
          outputs = tf.tidy(() => tf.softmax(net.forward(tf.tensor4d(inputs))).arraySync() as number[][]);
        } finally {
          net.dispose();
        }
        const cases = path.join(out, 'cases.json');
        fs.writeFileSync(cases, JSON.stringify({ inputs, outputs, tolerance: 1e-5 }));
        args.push(out, cases);
      }
      // One Python process for all (importing TensorFlow takes seconds); it exits 1 when a prediction differs.
      const lines = execFileSync(python, args, { encoding: 'utf8' }).trim().split('\n');
      const results = lines.map((l) => JSON.parse(l) as { ok: boolean; maxAbsDiff: number });
      assert.strictEqual(results.length, 3);
      for (const r of results) assert.ok(r.ok && r.maxAbsDiff <= 1e-5, JSON.stringify(r));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("applies weight constraints after each update as Keras's MaxNorm, MinMaxNorm, UnitNorm and NonNeg compute them", async () => {
    const w = [
      [3, -0.5, 0.1],
      [4, 1, -0.2],
    ];
    const cases = [
      { kind: 'MaxNorm', maxValue: 2, minValue: 0, rate: 1, axis: [0], keras: 'MaxNorm(max_value=2, axis=0)' },
      { kind: 'MinMaxNorm', maxValue: 3, minValue: 2, rate: 0.5, axis: [0], keras: 'MinMaxNorm(2, 3, 0.5, 0)' },
      { kind: 'UnitNorm', maxValue: 1, minValue: 0, rate: 1, axis: [1], keras: 'UnitNorm(axis=1)' },
      { kind: 'NonNeg', maxValue: 1, minValue: 0, rate: 1, axis: [0], keras: 'NonNeg()' },
      // axis=None (serialised as null): the norm of the whole weight.
      { kind: 'MaxNorm', maxValue: 2, minValue: 0, rate: 1, axis: null, keras: 'MaxNorm(max_value=2, axis=None)' },
    ] as const;
    const ours = cases.map((c) =>
      tf.tidy(() => constrained(tf.tensor2d(w), { ...c, axis: c.axis && [...c.axis] }).arraySync() as number[][]),
    );
    const python = path.join(__dirname, '..', '..', '..', '.tools', 'venv', 'bin', 'python');
    const code =
      'import json, os\nos.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"\nimport numpy as np, keras\nfrom keras.constraints import *\n' +
      `w = keras.ops.convert_to_tensor(np.array(${JSON.stringify(w)}, dtype="float32"))\n` +
      `print(json.dumps([keras.ops.convert_to_numpy(c(w)).tolist() for c in [${cases.map((c) => c.keras).join(', ')}]]))`;
    const theirs = JSON.parse(execFileSync(python, ['-c', code], { encoding: 'utf8' }).trim().split('\n').pop()!);
    ours.forEach((o, i) =>
      o.flat().forEach((v, j) => assert.ok(Math.abs(v - theirs[i].flat()[j]) < 1e-6, `${cases[i].kind} [${j}]`)),
    );

    // A converted model whose first Dense has MaxNorm(0.05): its kernel columns stay within it, and a resumed run
    // ends with the uninterrupted weights.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keras-constraint-'));
    try {
      const json = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'mlp-bn-l2', 'model.json'), 'utf8'));
      const dense = json.modelTopology.model_config.config.layers.find(
        (l: { config: { name: string } }) => l.config.name === 'feat1',
      );
      dense.config.kernel_constraint = {
        module: 'keras.constraints',
        class_name: 'MaxNorm',
        config: { max_value: 0.05, axis: 0 },
      };
      for (const p of json.weightsManifest[0].paths)
        fs.copyFileSync(path.join(FIXTURES, 'mlp-bn-l2', p), path.join(dir, p));
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      const spec = { ...specFor('mlp-bn-l2'), model: { tfjs: `file://${path.join(dir, 'model.json')}` } } as RunSpec;
      await assertExactResume(spec, 2, (full) => {
        const kernel = (full as unknown as { net: { constraints: Array<{ param: { variable: tf.Variable } }> } }).net
          .constraints[0].param.variable;
        const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(kernel), 0)).dataSync() as Float32Array);
        assert.ok(
          norms.every((n) => n <= 0.05 + 1e-6),
          `column norms ${Math.max(...norms)}`,
        );
        assert.ok(
          norms.some((n) => n > 0.049),
          'the constraint binds',
        );
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what the training loop cannot do, naming the layer and the field', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keras-refuse-'));
    const base = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'mlp-bn-l2', 'model.json'), 'utf8'));
    const separable = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'separable-cnn', 'model.json'), 'utf8'));
    const variant = async (
      edit: (layers: Array<{ class_name: string; config: Record<string, unknown> }>) => void,
      from = base,
    ) => {
      const json = JSON.parse(JSON.stringify(from));
      delete json.weightsManifest;
      edit(json.modelTopology.model_config.config.layers);
      const file = path.join(dir, `m${Math.random().toString(36).slice(2)}.json`);
      fs.writeFileSync(file, JSON.stringify(json));
      return loadTfjsModel(`file://${file}`).then((r) => {
        r.model.dispose();
        return 'loaded';
      });
    };
    try {
      await assert.rejects(
        variant((l) => (l[2].config.kernel_constraint = { class_name: 'RadialConstraint', config: {} })),
        /layer feat1 \(index 2, Dense\): kernel_constraint: constraint RadialConstraint is not supported \(supported: MaxNorm, MinMaxNorm, UnitNorm, NonNeg\)/,
      );
      await assert.rejects(
        variant(
          (l) => (l[2].config.kernel_constraint = { class_name: 'MinMaxNorm', config: { min_value: 2, max_value: 1 } }),
        ),
        /layer feat1 \(index 2, Dense\): kernel_constraint: constraint MinMaxNorm: needs 0 <= min_value <= max_value/,
      );
      await assert.rejects(
        variant((l) => (l[2].config.kernel_regularizer = { class_name: 'OrthogonalRegularizer', config: {} })),
        /layer feat1 \(index 2, Dense\): kernel_regularizer: regularizer OrthogonalRegularizer is not supported \(supported: L1, L2, L1L2\)/,
      );
      const lstm = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'lstm-text', 'model.json'), 'utf8'));
      await assert.rejects(
        variant((l) => {
          const rnn = l.find((x) => x.class_name === 'LSTM')!;
          rnn.class_name = 'GRU';
          rnn.config.reset_after = true;
        }, lstm),
        /layer lstm \(index \d, GRU\): reset_after true \(Keras 3's default\) is not supported: .*reset_after=False/,
      );
      await assert.rejects(
        variant((l) => (l[2].config.activity_regularizer = { class_name: 'L2', config: { l2: 0.1 } })),
        /layer feat1 \(index 2, Dense\): activity_regularizer is not supported/,
      );
      await assert.rejects(
        variant((l) => l.splice(2, 0, { class_name: 'GaussianNoise', config: { name: 'noise', stddev: 0.1 } })),
        /layer noise \(index 1, GaussianNoise\) is not supported \(supported: .*Dense/,
      );
      await assert.rejects(
        variant((l) => (l[1].config.dilation_rate = [2, 2]), separable),
        /layer dw1 \(index 0, DepthwiseConv2D\): dilationRate: depthwiseConv2d supports dilationRate 1 only/,
      );
      await assert.rejects(
        variant((l) => (l[2].config.strides = [2, 1]), separable),
        /layer sep1 \(index 1, SeparableConv2D\): strides: separableConv2d supports equal strides only/,
      );
      assert.strictEqual(await variant(() => undefined), 'loaded');
      assert.strictEqual(await variant(() => undefined, separable), 'loaded');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
