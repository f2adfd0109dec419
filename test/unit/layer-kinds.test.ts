// The layer kinds beyond the built-in models' and functional layer lists (`inputs`): each trains exactly on resume
// (snapshot, serialize, restore into a fresh Trainer, continue: the uninterrupted run's weights bit for bit) on the
// suite's backend (wasm; DURABLE_TRAIN_BACKEND=tensorflow for the native one), exports to a model.json that tfjs loads
// and predicts as our forward pass does, and a badly wired layer list is refused naming the layer and the field.
import * as assert from 'assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import * as tf from '@tensorflow/tfjs';
import type { Client } from '@temporalio/client';
import { startRun } from '../../cli/start';
import type { TemporalSettings } from '../../cli/connection';
import type { RunSpec } from '../../spec/types';
import { SPEC_KINDS, type LayerSpec } from '../../spec/layers';
import { validateSpec } from '../../spec/validate';
import { initBackend } from '../../training/backend';
import { buildFromLayers } from '../../training/models';
import { KINDS } from '../../training/layers';
import { Prng } from '../../training/prng';
import { Trainer, type TrainerSnapshot } from '../../training';

const specOf = (layers: LayerSpec[], seed = 3): RunSpec => ({
  chunkSteps: 10,
  chunkSeconds: 60,
  checkpoint: { storage: 'file://unused' },
  model: { layers },
  dataset: { name: 'mnist', trainLimit: 48, testLimit: 16 },
  epochs: 1,
  batchSize: 16,
  seed,
  optimizer: { name: 'adam', learningRate: 3e-3 },
});

/** Residual 1-D convolutions over the image rows as a sequence: conv1d, add, layerNormalization, global max pooling. */
export const RESIDUAL_CONV1D: LayerSpec[] = [
  { type: 'reshape', targetShape: [28, 28], name: 'rows' },
  { type: 'conv1d', filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' },
  { type: 'conv1d', filters: 8, kernelSize: 3, padding: 'same', name: 'c2' },
  { type: 'add', inputs: ['c1', 'c2'], name: 'sum' },
  { type: 'layerNormalization' },
  { type: 'maxPooling1d', poolSize: 2 },
  { type: 'dropout', rate: 0.2 },
  { type: 'globalMaxPooling1d' },
  { type: 'dense', units: 10, activation: 'softmax' },
];

/** conv1d strided ('same' and 'valid') and dilated ('valid' and 'same'). */
export const CONV1D_VARIANTS: LayerSpec[] = [
  { type: 'reshape', targetShape: [28, 28], name: 'rows' },
  { type: 'conv1d', filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 's2' },
  { type: 'conv1d', filters: 6, kernelSize: 3, dilationRate: 2, activation: 'relu', name: 'd2' },
  { type: 'conv1d', filters: 4, kernelSize: 2, strides: 3, name: 's3' },
  { type: 'conv1d', filters: 4, kernelSize: 3, dilationRate: 3, padding: 'same', name: 'd3' },
  { type: 'globalMaxPooling1d' },
  { type: 'dense', units: 10, activation: 'softmax' },
];

/** Recurrent: LSTM and GRU with input and recurrent dropout masks from the run's PRNG. */
const RECURRENT: LayerSpec[] = [
  { type: 'reshape', targetShape: [28, 28] },
  { type: 'maxPooling1d', poolSize: 4, strides: 4 },
  { type: 'lstm', units: 6, returnSequences: true, dropout: 0.1, recurrentDropout: 0.2 },
  { type: 'gru', units: 5, recurrentDropout: 0.1, dropout: 0.1 },
  { type: 'dense', units: 10 },
];

/** Branches from the model input merged by concatenate, multiply and average; global max pooling over 2-D. */
const BRANCHES: LayerSpec[] = [
  { type: 'conv2d', filters: 3, kernelSize: 3, activation: 'relu', name: 'a' },
  { type: 'conv2d', filters: 3, kernelSize: 3, inputs: 'input', name: 'b' },
  { type: 'multiply', inputs: ['a', 'b'], name: 'm' },
  { type: 'average', inputs: ['a', 'b', 'm'], name: 'av' },
  { type: 'concatenate', inputs: ['a', 'm', 'av'] },
  {
    type: 'zeroPadding2d',
    padding: [
      [1, 0],
      [2, 2],
    ],
  },
  { type: 'maxPooling2d', poolSize: 4 },
  { type: 'upSampling2d', size: [2, 3] },
  { type: 'globalMaxPooling2d' },
  { type: 'dense', units: 10, activation: 'softmax' },
];

/** Depthwise and separable convolutions: strides, both paddings, depth multipliers, with and without bias, first layer. */
const SEPARABLE: LayerSpec[] = [
  { type: 'depthwiseConv2d', kernelSize: 3, depthMultiplier: 2, padding: 'same', activation: 'relu' },
  {
    type: 'separableConv2d',
    filters: 6,
    kernelSize: 3,
    strides: 2,
    padding: 'same',
    depthMultiplier: 2,
    activation: 'relu',
  },
  { type: 'depthwiseConv2d', kernelSize: [3, 2], strides: [2, 2], useBias: false },
  { type: 'separableConv2d', filters: 8, kernelSize: 3 },
  { type: 'globalAveragePooling2d' },
  { type: 'dense', units: 10, activation: 'softmax' },
];

function roundTrip(snap: TrainerSnapshot): TrainerSnapshot {
  return {
    state: JSON.parse(JSON.stringify(snap.state)),
    tensors: snap.tensors.map((t) => ({ ...t, data: Uint8Array.from(t.data) })),
  };
}

async function exactOnResume(spec: RunSpec, breakAt: number): Promise<string> {
  const a = await Trainer.create(spec);
  await a.train({ maxSteps: 1000 });
  const uninterrupted = a.weightsSha256();
  const steps = a.state.step;
  a.dispose();
  let b = await Trainer.create(spec);
  await b.train({ maxSteps: breakAt });
  const snap = roundTrip(b.snapshot());
  b.dispose();
  b = await Trainer.fromSnapshot(spec, snap);
  await b.train({ maxSteps: 1000 });
  assert.strictEqual(b.state.step, steps);
  assert.strictEqual(b.weightsSha256(), uninterrupted, 'the resumed run ends with the uninterrupted weights');
  b.dispose();
  return uninterrupted;
}

/** What model.save writes (model.json's topology, the weights). */
async function artifactsOf(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }),
  );
  return artifacts!;
}

/** Exports the model as model.save does, loads it with tf.loadLayersModel, and compares predictions. */
async function exportMatches(layers: LayerSpec[]): Promise<void> {
  const net = buildFromLayers(layers, [28, 28, 1]);
  net.initialize(Prng.fromSeed(9));
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(await artifactsOf(net.model)));
  const x = tf.tensor4d(
    Float32Array.from({ length: 4 * 784 }, (_, i) => (Math.sin(i * 0.37) + 1) / 2),
    [4, 28, 28, 1],
  );
  const ours = net.forward(x);
  const theirs = loaded.predict(x) as tf.Tensor;
  // The last softmax is left to the loss in our forward pass.
  const last = layers[layers.length - 1].activation === 'softmax';
  const a = (last ? tf.softmax(ours) : ours).dataSync();
  const b = theirs.dataSync();
  assert.strictEqual(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-4, `prediction ${i}: ${a[i]} vs ${b[i]}`);
  tf.dispose([x, ours, theirs]);
  loaded.dispose();
  net.dispose();
}

describe('layer kinds and layer graphs', function () {
  this.timeout(600_000);
  before(async () => {
    await initBackend();
  });

  for (const [name, layers, breakAt] of [
    ['residual conv1d + add + layerNormalization + maxPooling1d + globalMaxPooling1d', RESIDUAL_CONV1D, 1],
    ['lstm and gru with dropout and recurrent dropout', RECURRENT, 2],
    ['branches merged by multiply, average, concatenate; zeroPadding2d, upSampling2d, globalMaxPooling2d', BRANCHES, 1],
    ['depthwiseConv2d and separableConv2d (strides, same and valid, depth multipliers)', SEPARABLE, 2],
    ['conv1d strided (same, valid) and dilated (valid, same)', CONV1D_VARIANTS, 1],
  ] as const) {
    it(`${name}: trains on ${process.env.DURABLE_TRAIN_BACKEND}, exact on resume, exports to tfjs`, async () => {
      const spec = validateSpec(specOf([...layers]));
      const hash = await exactOnResume(spec, breakAt);
      // Another seed gives other weights: the hash depends on the run.
      const other = await Trainer.create({ ...spec, seed: 4 });
      await other.train({ maxSteps: 1000 });
      assert.notStrictEqual(other.weightsSha256(), hash);
      other.dispose();
      await exportMatches([...layers]);
    });
  }

  it(`embedding looks up the table's rows on ${process.env.DURABLE_TRAIN_BACKEND} (wasm's float32 OneHot wrote int32 ones)`, () => {
    const table = tf.variable(tf.tensor2d([0.5, -1, 2, 3, 0.25, 7], [3, 2]));
    const ids = tf.tensor2d([2, 0, 1, 2], [2, 2]);
    try {
      const ctx = { numerics: 1 as const, isLast: false, inputGrad: false };
      const out = tf.tidy(() => KINDS.embedding.forward([ids], { embeddings: table }, {}, ctx).arraySync());
      assert.deepStrictEqual(out, [
        [
          [0.25, 7],
          [0.5, -1],
        ],
        [
          [2, 3],
          [0.25, 7],
        ],
      ]);
      // And its gradient reaches the rows looked up (twice for row 2).
      const g = tf.tidy(() =>
        tf
          .grad((t: tf.Tensor) => tf.sum(KINDS.embedding.forward([ids], { embeddings: t as tf.Variable }, {}, ctx)))(
            table,
          )
          .arraySync(),
      );
      assert.deepStrictEqual(g, [
        [1, 1],
        [1, 1],
        [2, 2],
      ]);
    } finally {
      tf.dispose([table, ids]);
    }
  });

  it("depthwise and pointwise kernels are Glorot-uniform with Keras's fans, from the run's PRNG", () => {
    const net = buildFromLayers([...SEPARABLE], [28, 28, 1]);
    try {
      net.initialize(Prng.fromSeed(9));
      // Keras's fans of a [..., in, out] kernel: in and out times the receptive field (the leading axes).
      const expected: Record<string, [number[], number, number]> = {
        'depthwiseConv2d1/depthwise_kernel': [[3, 3, 1, 2], 9, 18],
        'separableConv2d2/depthwise_kernel': [[3, 3, 2, 2], 18, 18],
        'separableConv2d2/pointwise_kernel': [[1, 1, 4, 6], 4, 6],
        'depthwiseConv2d3/depthwise_kernel': [[3, 2, 6, 1], 36, 6],
      };
      for (const [name, [shape, fanIn, fanOut]] of Object.entries(expected)) {
        const p = net.params.find((q) => q.variable.name.endsWith(name) || q.name.endsWith(name));
        assert.ok(p, `${name} in ${net.params.map((q) => q.name).join(', ')}`);
        assert.deepStrictEqual([p.shape, p.fanIn, p.fanOut], [shape, fanIn, fanOut], name);
        const limit = Math.sqrt(6 / (fanIn + fanOut));
        const values = Array.from(p.variable.dataSync());
        assert.ok(values.every((v) => Math.abs(v) <= limit) && values.some((v) => Math.abs(v) > limit / 2), name);
      }
    } finally {
      net.dispose();
    }
  });

  it('a chain written with inputs trains to the same weights as without', async () => {
    const chain: LayerSpec[] = [
      { type: 'flatten', name: 'f' },
      { type: 'dense', units: 8, activation: 'relu', name: 'd1' },
      { type: 'dense', units: 10, name: 'd2' },
    ];
    const wired = chain.map((l, i) => ({ ...l, inputs: i === 0 ? 'input' : chain[i - 1].name }));
    const run = async (ls: LayerSpec[]) => {
      const t = await Trainer.create(validateSpec(specOf(ls)));
      await t.train({ maxSteps: 1000 });
      const h = t.weightsSha256();
      t.dispose();
      return h;
    };
    assert.strictEqual(await run(wired), await run(chain));
  });

  it('a functional model.json with branches and merges trains through our forward pass, exact on resume', async () => {
    const net = buildFromLayers([...BRANCHES], [28, 28, 1]);
    net.initialize(Prng.fromSeed(5));
    const art = await artifactsOf(net.model);
    net.dispose();
    assert.strictEqual((art.modelTopology as { class_name: string }).class_name, 'Model');
    const dir = mkdtempSync(join(tmpdir(), 'layer-graph-'));
    writeFileSync(join(dir, 'weights.bin'), Buffer.from(art.weightData as ArrayBuffer));
    const manifest = [{ paths: ['weights.bin'], weights: art.weightSpecs }];
    writeFileSync(
      join(dir, 'model.json'),
      JSON.stringify({ modelTopology: art.modelTopology, weightsManifest: manifest }),
    );
    const spec = validateSpec({ ...specOf([]), model: { tfjs: `file://${join(dir, 'model.json')}` } });
    await exactOnResume(spec, 2);
  });

  it('examples/mnist-residual.json is a valid spec whose residual model builds and gives one logit per class', () => {
    const spec = validateSpec(
      JSON.parse(readFileSync(join(__dirname, '../../../examples/mnist-residual.json'), 'utf8')),
    );
    const layers = (spec.model as { layers: LayerSpec[] }).layers;
    assert.ok(layers.some((l) => l.inputs !== undefined));
    const net = buildFromLayers(layers, [28, 28, 1]);
    assert.deepStrictEqual(net.model.outputs[0].shape, [null, 10]);
    net.dispose();
  });

  describe('refusals name the layer and the field', () => {
    const refused = (layers: LayerSpec[], pattern: RegExp) =>
      assert.throws(
        () => validateSpec(specOf(layers)),
        (err: Error) => {
          assert.match(err.message, pattern);
          return true;
        },
      );

    it('a conv1d both strided and dilated (Keras refuses it too), or causal (tfjs cannot run it)', () => {
      const conv1d = (o: Record<string, unknown>): LayerSpec[] => [
        { type: 'reshape', targetShape: [28, 28] },
        { type: 'conv1d', filters: 4, kernelSize: 3, ...o } as LayerSpec,
        { type: 'globalMaxPooling1d' },
        { type: 'dense', units: 10 },
      ];
      refused(
        conv1d({ strides: 2, dilationRate: 2 }),
        /layers\[1\]\.dilationRate.*strides or dilationRate above 1, not both/s,
      );
      refused(conv1d({ padding: 'causal' }), /layers\[1\]\.padding/);
      // A converted model's Conv1D config (tfjs's names, sizes as lists) is checked the same way.
      assert.deepStrictEqual(SPEC_KINDS.conv1d.checkConfig!({ padding: 'causal', strides: [1] })?.[0], 'padding');
      assert.deepStrictEqual(SPEC_KINDS.conv1d.checkConfig!({ strides: [2], dilationRate: [2] })?.[0], 'dilationRate');
      assert.strictEqual(SPEC_KINDS.conv1d.checkConfig!({ padding: 'same', strides: [2], dilationRate: [1] }), null);
    });

    it('a dilated conv2d (tfjs has no gradient for it), naming the option', () => {
      for (const dilationRate of [2, [1, 2]])
        refused(
          [
            { type: 'conv2d', filters: 4, kernelSize: 3, dilationRate },
            { type: 'flatten' },
            { type: 'dense', units: 10 },
          ],
          /layers\[0\]\.dilationRate.*conv2d supports dilationRate 1 only/s,
        );
      assert.doesNotThrow(() =>
        validateSpec(
          specOf([
            { type: 'conv2d', filters: 4, kernelSize: 3, dilationRate: [1, 1] },
            { type: 'flatten' },
            { type: 'dense', units: 10 },
          ]),
        ),
      );
    });

    it('a dilated or unequally strided depthwiseConv2d or separableConv2d, naming the option', () => {
      const with_ = (l: LayerSpec): LayerSpec[] => [l, { type: 'flatten' }, { type: 'dense', units: 10 }];
      for (const type of ['depthwiseConv2d', 'separableConv2d']) {
        const base = type === 'separableConv2d' ? { type, filters: 4, kernelSize: 3 } : { type, kernelSize: 3 };
        refused(
          with_({ ...base, dilationRate: 2 }),
          new RegExp(`layers\\[0\\]\\.dilationRate.*${type} supports dilationRate 1 only`, 's'),
        );
        refused(
          with_({ ...base, strides: [2, 1] }),
          new RegExp(`layers\\[0\\]\\.strides.*${type} supports equal strides only`, 's'),
        );
        refused(with_({ ...base, depthMultiplier: 0 }), /layers\[0\]\.depthMultiplier: must be a positive integer/);
        refused(with_({ ...base, padding: 'causal' }), /layers\[0\]\.padding: must be "valid" or "same"/);
        assert.doesNotThrow(() => validateSpec(specOf(with_({ ...base, strides: [2, 2], dilationRate: [1, 1] }))));
      }
      refused(with_({ type: 'separableConv2d', kernelSize: 3 }), /layers\[0\]\.filters: missing/);
    });

    it('a cycle (a layer reading a later one, or itself)', () => {
      refused(
        [
          { type: 'dense', units: 4, name: 'a', inputs: 'b' },
          { type: 'dense', units: 4, name: 'b', inputs: 'a' },
          { type: 'dense', units: 10 },
        ],
        /model\.layers\[0\]\.inputs.*b is not listed before this layer.*no cycle/s,
      );
      refused([{ type: 'dense', units: 10, name: 'a', inputs: 'a' }], /layers\[0\]\.inputs.*a is not listed before/s);
    });

    it('an unknown input, a merge of one input, two inputs to a non-merge layer, an unread layer', () => {
      refused(
        [{ type: 'flatten' }, { type: 'dense', units: 10, inputs: 'flaten' }],
        /layers\[1\]\.inputs.*unknown layer flaten \(this layer may read: input, flatten1\)/s,
      );
      refused(
        [
          { type: 'flatten', name: 'f' },
          { type: 'add', inputs: ['f'] },
          { type: 'dense', units: 10 },
        ],
        /layers\[1\]\.inputs.*add combines two or more layers/s,
      );
      refused(
        [
          { type: 'flatten', name: 'f' },
          { type: 'dense', units: 10, inputs: ['f', 'input'] },
        ],
        /layers\[1\]\.inputs.*dense reads one input, got 2/s,
      );
      refused(
        [
          { type: 'flatten', name: 'f' },
          { type: 'flatten', inputs: 'input' },
          { type: 'dense', units: 10 },
        ],
        /layers\[0\]: the output of f is read by no layer/s,
      );
    });

    it('merged shapes that do not fit, before any training (and a refused model keeps no variables)', async () => {
      const variables = () => Object.keys(tf.engine().state.registeredVariables).length;
      const before = variables();
      const layers: LayerSpec[] = [
        { type: 'conv2d', filters: 4, kernelSize: 3, name: 'c' },
        { type: 'conv2d', filters: 4, kernelSize: 5, inputs: 'input', name: 'd' },
        { type: 'add', inputs: ['c', 'd'] },
        { type: 'flatten' },
        { type: 'dense', units: 10 },
      ];
      const spec = validateSpec(specOf(layers));
      assert.throws(
        () => buildFromLayers(layers, [28, 28, 1]),
        /model\.layers\[2\]\.inputs: add needs inputs of one shape; input 1 is \[26,26,4\], input 2 is \[24,24,4\] \(from c, d\)/,
      );
      await assert.rejects(Trainer.create(spec), { name: 'LayerError', message: /layers\[2\]\.inputs/ });
      // `start` refuses it before it touches Temporal: a client that fails on any use is never used.
      const untouchable = new Proxy({}, { get: () => assert.fail('start used the client') }) as Client;
      await assert.rejects(startRun(untouchable, { namespace: 'default' } as TemporalSettings, { spec }), {
        message: /^invalid spec: model\.layers\[2\]\.inputs: add needs inputs of one shape/,
      });
      const concat: LayerSpec[] = [
        ...layers.slice(0, 2),
        { type: 'concatenate', inputs: ['c', 'd'] },
        ...layers.slice(3),
      ];
      assert.throws(
        () => buildFromLayers(concat, [28, 28, 1]),
        /layers\[2\]\.inputs: concatenate needs inputs of one shape but along axis -1/,
      );
      assert.strictEqual(variables(), before, 'the layers built before each refusal are disposed');
    });
  });
});
