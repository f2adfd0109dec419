// The pure model-fit check, layer by layer: each kind's output shape and weight count, padding and strides, the
// built-in models as layer lists, and the memory estimate to the byte (weights, optimizer slots, activations) against
// the limit. No tfjs: the numbers `start` and the worker both compute before anything is allocated.
import * as assert from 'node:assert/strict';
import { validateSpec, type RunSpec } from '../../spec';
import { checkModelFit, ModelFitError, type ModelFit } from '../../spec/model-fit';

const GiB = 2 ** 30;
const spec = (model: unknown, extra: Record<string, unknown> = {}): RunSpec =>
  validateSpec({
    model,
    dataset: { name: 'mnist', trainLimit: 100 },
    epochs: 1,
    batchSize: 20,
    optimizer: { name: 'sgd', learningRate: 0.1 },
    checkpoint: { storage: 'file://x' },
    ...extra,
  });
/** A spec as code may build it, unvalidated (a layer option the schema refuses, no defaults filled in). */
const raw = (model: unknown, extra: Record<string, unknown> = {}): RunSpec =>
  ({ model, batchSize: 20, optimizer: { name: 'sgd', learningRate: 0.1 }, ...extra }) as unknown as RunSpec;

const fit = (s: RunSpec, shape = [28, 28, 1], max = GiB): ModelFit => {
  const f = checkModelFit(s, shape, max);
  assert.ok(f);
  return f;
};
/** Each layer as `name type [shape] params`. */
const layersOf = (f: ModelFit) => f.layers.map((l) => `${l.name} ${l.type} [${l.outputShape.join(',')}] ${l.params}`);
const failure = (s: RunSpec, shape = [28, 28, 1], max = GiB): string => {
  try {
    checkModelFit(s, shape, max);
  } catch (err) {
    assert.ok(err instanceof ModelFitError, String(err));
    assert.equal(err.name, 'ModelFitError');
    return err.message;
  }
  assert.fail('expected a ModelFitError');
};

describe('model fit: the built-in models as layer lists', () => {
  it('mnist-mlp: dropout layer only with a rate above 0', () => {
    assert.deepEqual(layersOf(fit(spec('mnist-mlp', { dropout: 0.5 }))), [
      'flatten flatten [784] 0',
      'dense1 dense [128] 100480',
      'dropout1 dropout [128] 0',
      'dense2 dense [10] 1290',
    ]);
    assert.deepEqual(layersOf(fit(spec('mnist-mlp'))), [
      'flatten flatten [784] 0',
      'dense1 dense [128] 100480',
      'dense2 dense [10] 1290',
    ]);
  });

  it('mnist-cnn: its default dropout 0.25 even when code left it out of the spec', () => {
    const cnn = [
      'conv1 conv2d [26,26,32] 320',
      'pool1 maxPooling2d [13,13,32] 0',
      'conv2 conv2d [11,11,64] 18496',
      'pool2 maxPooling2d [5,5,64] 0',
      'dropout1 dropout [5,5,64] 0',
      'flatten flatten [1600] 0',
      'dense1 dense [128] 204928',
      'dropout2 dropout [128] 0',
      'dense2 dense [10] 1290',
    ];
    assert.deepEqual(layersOf(fit(spec('mnist-cnn'))), cnn);
    assert.deepEqual(layersOf(fit(raw('mnist-cnn'))), cnn);
    assert.deepEqual(layersOf(fit(raw('mnist-mlp'))), [
      'flatten flatten [784] 0',
      'dense1 dense [128] 100480',
      'dense2 dense [10] 1290',
    ]);
    assert.equal(checkModelFit(raw('mnist-other'), [28, 28, 1], GiB), null);
  });

  it('a registered or tfjs model is built to be checked: no fit here', () => {
    assert.equal(checkModelFit(spec({ registered: 'mine' }), [28, 28, 1], GiB), null);
    assert.equal(checkModelFit(spec({ tfjs: 'file://m/model.json' }), [28, 28, 1], GiB), null);
  });
});

describe('model fit: each layer kind', () => {
  it('dense and conv2d count their bias unless useBias is false', () => {
    assert.deepEqual(
      layersOf(
        fit(
          spec({
            layers: [
              { type: 'conv2d', filters: 4, kernelSize: 3, useBias: false },
              { type: 'conv2d', filters: 2, kernelSize: [3, 1] },
              { type: 'flatten' },
              { type: 'dense', units: 5, useBias: false },
              { type: 'dense', units: 1 },
            ],
          }),
        ),
      ),
      [
        'conv2d1 conv2d [26,26,4] 36',
        'conv2d2 conv2d [24,26,2] 26',
        'flatten3 flatten [1248] 0',
        'dense4 dense [5] 6240',
        'dense5 dense [1] 6',
      ],
    );
  });

  it('padding "same" keeps ceil(size / stride); "valid" allows a window as large as its input', () => {
    assert.deepEqual(
      layersOf(
        fit(
          spec({
            layers: [
              { type: 'conv2d', filters: 2, kernelSize: 3, padding: 'same' },
              { type: 'conv2d', filters: 2, kernelSize: 3, padding: 'same', strides: 3 },
              { type: 'maxPooling2d', poolSize: 10 },
              { type: 'flatten' },
              { type: 'dense', units: 2 },
            ],
          }),
        ),
      ),
      [
        'conv2d1 conv2d [28,28,2] 20',
        'conv2d2 conv2d [10,10,2] 38',
        'maxPooling2d3 maxPooling2d [1,1,2] 0',
        'flatten4 flatten [2] 0',
        'dense5 dense [2] 6',
      ],
    );
  });

  it('pools stride by their window unless strides says otherwise; average and global pools too', () => {
    assert.deepEqual(
      layersOf(
        fit(
          spec({
            layers: [
              { type: 'maxPooling2d', poolSize: 2, strides: 1 },
              { type: 'averagePooling2d', poolSize: [3, 2] },
              { type: 'averagePooling2d', poolSize: 2, strides: [1, 2], padding: 'same' },
              { type: 'globalAveragePooling2d' },
              { type: 'dense', units: 2 },
            ],
          }),
        ),
      ),
      [
        'maxPooling2d1 maxPooling2d [27,27,1] 0',
        'averagePooling2d2 averagePooling2d [9,13,1] 0',
        'averagePooling2d3 averagePooling2d [9,7,1] 0',
        'globalAveragePooling2d4 globalAveragePooling2d [1] 0',
        'dense5 dense [2] 4',
      ],
    );
  });

  it('reshape, batchNormalization, embedding, activation and dropout', () => {
    assert.deepEqual(
      layersOf(
        fit(
          spec({
            layers: [
              { type: 'reshape', targetShape: [784] },
              { type: 'batchNormalization' },
              { type: 'activation', activation: 'relu' },
              { type: 'dropout', rate: 0.1 },
              { type: 'embedding', inputDim: 256, outputDim: 3 },
              { type: 'flatten' },
              { type: 'dense', units: 2 },
            ],
          }),
        ),
      ),
      [
        'reshape1 reshape [784] 0',
        'batchNormalization2 batchNormalization [784] 3136',
        'activation3 activation [784] 0',
        'dropout4 dropout [784] 0',
        'embedding5 embedding [784,3] 768',
        'flatten6 flatten [2352] 0',
        'dense7 dense [2] 4706',
      ],
    );
  });

  it("the input shape: the model's, else the first layer's, else the data's", () => {
    const first = fit(spec({ layers: [{ type: 'dense', units: 3, inputShape: [4] }] }));
    assert.deepEqual(layersOf(first), ['dense1 dense [3] 15']);
    const model = fit(spec({ layers: [{ type: 'dense', units: 3 }], inputShape: [2] }));
    assert.deepEqual(layersOf(model), ['dense1 dense [3] 9']);
    assert.deepEqual(layersOf(fit(spec({ layers: [{ type: 'dense', units: 3 }] }), [5])), ['dense1 dense [3] 18']);
  });

  it('a dilated conv2d (refused by the schema) is sized by its effective window', () => {
    const f = fit(raw({ layers: [{ type: 'conv2d', filters: 1, kernelSize: 3, dilationRate: [2, 3] }] }));
    assert.deepEqual(layersOf(f), ['conv2d1 conv2d [24,22,1] 10']);
  });
});

describe('model fit: refusals name the layer', () => {
  it('a spatial layer on a flat input', () => {
    assert.equal(
      failure(spec({ layers: [{ type: 'flatten' }, { type: 'conv2d', filters: 2, kernelSize: 3 }] })),
      'model.layers[1] (conv2d2, conv2d) on input [784]: needs an input of [height, width, channels], got rank 1',
    );
  });

  it('a window larger than its input with padding "valid"', () => {
    assert.equal(
      failure(spec({ layers: [{ type: 'maxPooling2d', poolSize: 29 }] })),
      'model.layers[0] (maxPooling2d1, maxPooling2d) on input [28, 28, 1]: its window (29) is larger than its input (28) with padding "valid"',
    );
  });

  it('a reshape that does not hold its input', () => {
    assert.equal(
      failure(spec({ layers: [{ type: 'reshape', targetShape: [27, 27] }] })),
      'model.layers[0] (reshape1, reshape) on input [28, 28, 1]: targetShape [27, 27] holds 729 values, its input 784',
    );
  });

  it('an output dimension of zero', () => {
    assert.equal(
      failure(raw({ layers: [{ type: 'flatten' }, { type: 'dense', units: 0 }] })),
      'model.layers[1] (dense2, dense) on input [784]: its output shape [0] has an empty dimension',
    );
    assert.equal(
      failure(raw({ layers: [{ type: 'flatten' }, { type: 'embedding', inputDim: 2, outputDim: 0 }] })),
      'model.layers[1] (embedding2, embedding) on input [784]: its output shape [784, 0] has an empty dimension',
    );
  });
});

describe('model fit: memory to the byte', () => {
  const small = { layers: [{ type: 'flatten' }, { type: 'dense', units: 3 }] };

  it('weights, gradient and optimizer slots (sgd 0, momentum 1, adam 2), activations and their gradients', () => {
    // 15 weights; per example: the input (4) and each layer's output (4 + 3); batch 20; 4 bytes a float
    const sgd = fit(spec(small), [2, 2, 1]);
    assert.equal(sgd.params, 15);
    assert.deepEqual(sgd.bytes, { weights: 60, optimizer: 60, activations: 11 * 20 * 4 * 2, total: 60 + 60 + 1760 });
    const momentum = fit(spec(small, { optimizer: { name: 'momentum', learningRate: 0.1 } }), [2, 2, 1]);
    assert.equal(momentum.bytes.optimizer, 120);
    const adam = fit(spec(small, { optimizer: { name: 'adam', learningRate: 0.1 } }), [2, 2, 1]);
    assert.equal(adam.bytes.optimizer, 180);
    assert.equal(adam.bytes.total, 60 + 180 + 1760);
  });

  it('fits a model exactly at the limit, refuses one byte over, naming the largest layer by weights and outputs', () => {
    assert.equal(fit(spec(small), [2, 2, 1], 1880).bytes.total, 1880);
    assert.match(failure(spec(small), [2, 2, 1], 1879), /^model: training needs about 0\.0 MiB .* limit of 0\.0 MiB/);
    const wide = {
      layers: [
        { type: 'conv2d', filters: 64, kernelSize: 3, padding: 'same' },
        { type: 'flatten' },
        { type: 'dense', units: 10 },
      ],
    };
    assert.equal(
      failure(spec(wide), [28, 28, 1], 2 ** 20),
      "model: training needs about 19.3 MiB (weights 1.9 MiB, gradients and sgd slots 1.9 MiB, activations at batch size 20 15.4 MiB), more than this worker's limit of 1.0 MiB (DURABLE_TRAIN_MAX_MODEL_BYTES); the largest layer is model.layers[0] (conv2d1, 640 weights, output [28, 28, 64])",
    );
    // the largest by weights plus outputs at the batch size: the embedding (100 + 1000 x 20), not the first dense
    // layer (5000 + 10 x 20) nor the flatten (0 + 1000 x 20)
    const grows = {
      layers: [
        { type: 'dense', units: 10 },
        { type: 'embedding', inputDim: 1, outputDim: 100 },
        { type: 'flatten' },
        { type: 'dense', units: 2 },
      ],
    };
    assert.match(
      failure(spec(grows), [499], 1000),
      /the largest layer is model\.layers\[1\] \(embedding2, 100 weights, output \[10, 100\]\)$/,
    );
  });
});
