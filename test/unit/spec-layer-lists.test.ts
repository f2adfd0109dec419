// A model given as a layer list: each layer's options (bounds, required ones, unknown ones, names), the wiring of a
// graph (inputs), the message of each refusal naming the layer, its index and field, and what such a model may freeze.
// In process and fast: checkLayerSpec / checkLayerGraph directly, and validateSpec for what the schema adds around them.
import * as assert from 'node:assert/strict';
import { DurableTrainError, errorCodeOf } from '../../spec/errors';
import { modelLabel, datasetLabel } from '../../spec/labels';
import {
  checkLayerGraph,
  checkLayerSpec,
  isLayerGraph,
  layerInputsOf,
  LAYER_TYPES,
  LayerError,
  type LayerSpec,
} from '../../spec/layers';
import { SpecError, validateSpec } from '../../spec';

const spec = (model: unknown, extra: Record<string, unknown> = {}): unknown => ({
  model,
  dataset: { name: 'mnist', trainLimit: 100 },
  epochs: 1,
  batchSize: 10,
  optimizer: { name: 'sgd', learningRate: 0.1 },
  checkpoint: { storage: 'file://.data/checkpoints' },
  ...extra,
});

/** The SpecError validateSpec throws for `input`: its field and its message without the "invalid spec: " prefix. */
function refused(input: unknown): { field: string; message: string } {
  try {
    validateSpec(input);
  } catch (err) {
    assert.ok(err instanceof SpecError, `expected a SpecError, got ${String(err)}`);
    const prefix = `invalid spec: ${err.field}: `;
    assert.ok(err.message.startsWith(prefix), err.message);
    return { field: err.field, message: err.message.slice(prefix.length) };
  }
  assert.fail(`expected ${JSON.stringify(input)} to be refused`);
}

/** The LayerError of checking `l` as layer `i` (the last one when `isLast`). */
function layerError(l: unknown, i = 0, isLast = true): LayerError {
  try {
    checkLayerSpec(l, i, isLast);
  } catch (err) {
    assert.ok(err instanceof LayerError, `expected a LayerError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(l)} to be refused`);
}

function graphError(layers: LayerSpec[]): LayerError {
  try {
    checkLayerGraph(layers);
  } catch (err) {
    assert.ok(err instanceof LayerError, `expected a LayerError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(layers)} to be refused`);
}

const dense = (units: number, extra: Record<string, unknown> = {}): LayerSpec => ({ type: 'dense', units, ...extra });

describe('spec layer lists: one layer', () => {
  it('a LayerError names the layer index and field, is a durable-train error of code invalid', () => {
    const withField = new LayerError(12, 'units', 'too big');
    assert.equal(withField.message, 'model.layers[12].units: too big');
    assert.equal(withField.name, 'LayerError');
    assert.equal(withField.index, 12);
    assert.equal(withField.field, 'units');
    assert.equal(new LayerError(3, '', 'bad').message, 'model.layers[3]: bad');
    assert.ok(withField instanceof DurableTrainError);
    assert.equal(errorCodeOf(withField), 'invalid');
    assert.equal(errorCodeOf(new Error('plain')), undefined);
    assert.equal(errorCodeOf('not an error'), undefined);
  });

  it('a layer that is not an object is refused as such (null, a list, a number)', () => {
    for (const l of [null, [], [{ type: 'dense' }], 5, 'dense', undefined]) {
      const err = layerError(l, 4);
      assert.equal(err.message, 'model.layers[4]: must be an object with a "type"', JSON.stringify(l));
      assert.equal(err.field, '');
    }
  });

  it('an unknown type (or an inherited property name) is refused listing the supported ones', () => {
    for (const type of ['conv3d', 'toString', undefined]) {
      const err = layerError({ type }, 2);
      assert.equal(err.field, 'type');
      assert.equal(
        err.message,
        `model.layers[2].type: unsupported layer ${JSON.stringify(type)} (supported: ${LAYER_TYPES.join(', ')})`,
      );
    }
  });

  it('an unknown option is refused listing what the kind supports (none for a merge layer)', () => {
    const err = layerError(dense(3, { kernelSize: 3 }), 1);
    assert.equal(err.field, 'kernelSize');
    assert.equal(
      err.message,
      'model.layers[1].kernelSize: unsupported option for dense (supported: name, inputs, units, activation, useBias, inputShape)',
    );
    assert.equal(
      layerError({ type: 'add', inputs: ['a', 'b'], axis: 1 }).message,
      'model.layers[0].axis: unsupported option for add (supported: name, inputs, none)',
    );
    // type, name and inputs are every kind's own
    checkLayerSpec({ type: 'add', name: 'sum', inputs: ['a', 'b'] }, 0, true);
    checkLayerSpec(dense(3, { name: 'd', inputs: 'input' }), 0, true);
  });

  it('a missing required option names what the kind needs', () => {
    const err = layerError({ type: 'dense' }, 0);
    assert.equal(err.field, 'units');
    assert.equal(err.message, 'model.layers[0].units: missing (dense needs a positive integer)');
    assert.equal(
      layerError({ type: 'conv2d', filters: 2 }).message,
      'model.layers[0].kernelSize: missing (conv2d needs a positive integer or [h, w])',
    );
    // an optional option may be left out
    checkLayerSpec({ type: 'conv2d', filters: 2, kernelSize: 3 }, 0, true);
  });

  it('a positive integer is 1 to 1,000,000 and an integer', () => {
    for (const units of [1, 2, 1_000_000]) checkLayerSpec(dense(units), 0, true);
    for (const units of [0, -1, 1_000_001, 1.5, '3', null, true]) {
      const err = layerError(dense(units as number));
      assert.equal(err.field, 'units');
      assert.equal(err.message, `model.layers[0].units: must be a positive integer, got ${JSON.stringify(units)}`);
    }
  });

  it('a shape is a list of 1 to 4 positive integers', () => {
    for (const inputShape of [[1], [28, 28, 1], [1, 2, 3, 4]]) checkLayerSpec(dense(2, { inputShape }), 0, true);
    for (const inputShape of [[], [1, 2, 3, 4, 5], [28, 0], [0, 28], [2.5], 28, '28', [[28]]]) {
      assert.equal(
        layerError(dense(2, { inputShape })).message,
        `model.layers[0].inputShape: must be a list of 1 to 4 positive integers, got ${JSON.stringify(inputShape)}`,
      );
    }
  });

  it('a size is a positive integer or [h, w] of them', () => {
    for (const kernelSize of [1, 3, [3, 3], [1, 5]])
      checkLayerSpec({ type: 'conv2d', filters: 2, kernelSize }, 0, true);
    for (const kernelSize of [0, [3], [3, 3, 3], [3, 0], [0, 3], '3', [3.5, 3]]) {
      assert.equal(
        layerError({ type: 'conv2d', filters: 2, kernelSize }).message,
        `model.layers[0].kernelSize: must be a positive integer or [h, w], got ${JSON.stringify(kernelSize)}`,
      );
    }
  });

  it('a layer name is a letter then up to 63 letters, digits or _', () => {
    for (const name of ['a', 'dense_1', 'A1', `a${'b'.repeat(63)}`]) checkLayerSpec(dense(2, { name }), 0, true);
    for (const name of ['1a', '_a', 'a-', 'a b', '', `a${'b'.repeat(64)}`, 5, null]) {
      const err = layerError(dense(2, { name }));
      assert.equal(err.field, 'name');
      assert.equal(err.message, `model.layers[0].name: must be a name like dense_1, got ${JSON.stringify(name)}`);
    }
  });

  it('inputs is a layer name or a list of 1 to 64 of them', () => {
    for (const inputs of ['a', ['a'], ['a', 'b'], Array.from({ length: 64 }, (_, i) => `l${i}`)])
      checkLayerSpec({ type: 'add', inputs }, 0, true);
    for (const inputs of ['', [], [''], ['a', ''], [5], 5, Array.from({ length: 65 }, (_, i) => `l${i}`)]) {
      const err = layerError({ type: 'add', inputs });
      assert.equal(err.field, 'inputs');
      assert.equal(
        err.message,
        `model.layers[0].inputs: must be a layer name or a list of them (earlier layers, or "input" for the model's input), got ${JSON.stringify(inputs)}`,
      );
    }
  });

  it('true or false, and a rate in [0, 1)', () => {
    checkLayerSpec(dense(2, { useBias: false }), 0, true);
    for (const useBias of ['yes', 1, null])
      assert.equal(
        layerError(dense(2, { useBias })).message,
        `model.layers[0].useBias: must be true or false, got ${JSON.stringify(useBias)}`,
      );
    for (const rate of [0, 0.5, 0.999]) checkLayerSpec({ type: 'dropout', rate }, 0, true);
    for (const rate of [1, -0.1, 1.5, '0.5'])
      assert.equal(
        layerError({ type: 'dropout', rate }).message,
        `model.layers[0].rate: must be a number in [0, 1), got ${JSON.stringify(rate)}`,
      );
  });

  it('softmax is allowed on the last layer only', () => {
    checkLayerSpec(dense(10, { activation: 'softmax' }), 3, true);
    checkLayerSpec(dense(10, { activation: 'relu' }), 3, false);
    assert.equal(
      layerError({ type: 'activation', activation: 'softmax' }, 1, false).message,
      'model.layers[1].activation: softmax is supported on the last layer only (the loss works on logits)',
    );
    const err = layerError(dense(10, { activation: 'softmax' }), 3, false);
    assert.equal(err.field, 'activation');
    assert.equal(
      err.message,
      'model.layers[3].activation: softmax is supported on the last layer only (the loss works on logits)',
    );
  });

  it('conv2d refuses a dilationRate other than 1 (no gradient in tfjs), naming the field', () => {
    for (const dilationRate of [1, [1, 1], undefined])
      checkLayerSpec({ type: 'conv2d', filters: 2, kernelSize: 3, dilationRate }, 0, true);
    for (const dilationRate of [2, [1, 2], [2, 1]]) {
      const err = layerError({ type: 'conv2d', filters: 2, kernelSize: 3, dilationRate });
      assert.equal(err.field, 'dilationRate');
      assert.equal(
        err.message,
        'model.layers[0].dilationRate: conv2d supports dilationRate 1 only (tfjs has no gradient for dilated convolutions)',
      );
    }
  });
});

describe('spec layer lists: the graph', () => {
  it('reads inputs as named, else the layer before (the model input for the first)', () => {
    assert.deepEqual(
      layerInputsOf([dense(2, { name: 'a' }), dense(2, { inputs: 'input' }), { type: 'add', inputs: ['a', 'dense2'] }]),
      [['input'], ['input'], ['a', 'dense2']],
    );
  });

  it('is a graph when some layer names its inputs', () => {
    assert.equal(isLayerGraph([dense(4), dense(2)]), false);
    assert.equal(isLayerGraph([dense(4), dense(2, { inputs: 'dense1' })]), true);
    assert.equal(isLayerGraph([dense(4, { inputs: 'input' }), dense(2)]), true);
  });

  it('a chain and a graph whose every layer is read pass', () => {
    checkLayerGraph([dense(4), dense(2)]);
    checkLayerGraph([
      dense(4, { name: 'a' }),
      dense(4, { name: 'b', inputs: 'input' }),
      { type: 'add', inputs: ['a', 'b'] },
      dense(2),
    ]);
  });

  it('refuses a layer named "input"', () => {
    const err = graphError([dense(4), dense(2, { name: 'input' })]);
    assert.equal(err.message, `model.layers[1].name: "input" names the model's input in inputs; choose another name`);
  });

  it('refuses inputs naming a later layer (a cycle) or an unknown one, listing what may be read', () => {
    assert.equal(
      graphError([dense(4, { name: 'a', inputs: 'b' }), dense(2, { name: 'b' })]).message,
      "model.layers[0].inputs: b is not listed before this layer: a layer reads only the model's input and earlier layers, so that the graph has no cycle",
    );
    assert.equal(
      graphError([dense(4, { name: 'a' }), dense(4, { name: 'b', inputs: 'b' }), dense(2)]).message,
      "model.layers[1].inputs: b is not listed before this layer: a layer reads only the model's input and earlier layers, so that the graph has no cycle",
    );
    assert.equal(
      graphError([dense(4, { name: 'a' }), dense(4, { name: 'b' }), dense(2, { inputs: ['zz'] })]).message,
      'model.layers[2].inputs: unknown layer zz (this layer may read: input, a, b)',
    );
  });

  it('a merge layer needs two inputs or more, any other layer exactly one', () => {
    assert.equal(
      graphError([dense(4, { name: 'a' }), { type: 'add', inputs: ['a'] }]).message,
      'model.layers[1].inputs: add combines two or more layers: name them in inputs (this layer may read: input, a)',
    );
    assert.equal(
      graphError([dense(4, { name: 'a' }), { type: 'add' }]).message,
      'model.layers[1].inputs: add combines two or more layers: name them in inputs (this layer may read: input, a)',
    );
    assert.equal(
      graphError([dense(4, { name: 'a' }), dense(4, { name: 'b', inputs: 'input' }), dense(2, { inputs: ['a', 'b'] })])
        .message,
      'model.layers[2].inputs: dense reads one input, got 2 (combine them first with add, concatenate, multiply or average)',
    );
  });

  it('refuses a layer whose output no later layer reads (the last one excepted)', () => {
    const err = graphError([dense(4, { name: 'a' }), dense(4, { name: 'b', inputs: 'input' }), dense(2)]);
    assert.equal(err.index, 0);
    assert.equal(
      err.message,
      "model.layers[0]: the output of a is read by no layer (name it in a later layer's inputs)",
    );
  });
});

describe('spec layer lists: through validateSpec', () => {
  const eleven = (last: LayerSpec): LayerSpec[] => [
    { type: 'flatten' },
    ...Array.from({ length: 9 }, () => dense(4)),
    last,
  ];

  it('names the field of the layer, past index 9, without repeating the layer prefix', () => {
    assert.deepEqual(refused(spec({ layers: eleven(dense(0)) })), {
      field: 'model.layers[10].units',
      message: 'must be a positive integer, got 0',
    });
    assert.deepEqual(refused(spec({ layers: eleven(dense(2, { bias: 1 })) })), {
      field: 'model.layers[10].bias',
      message: 'unsupported option for dense (supported: name, inputs, units, activation, useBias, inputShape)',
    });
    assert.deepEqual(
      refused(spec({ layers: [dense(4, { name: 'a' }), dense(4, { name: 'b', inputs: 'input' }), dense(2)] })),
      {
        field: 'model.layers[0]',
        message: "the output of a is read by no layer (name it in a later layer's inputs)",
      },
    );
    assert.deepEqual(refused(spec({ layers: [dense(4, { activation: 'softmax' }), dense(2)] })), {
      field: 'model.layers[0].activation',
      message: 'softmax is supported on the last layer only (the loss works on logits)',
    });
    const ok = validateSpec(spec({ layers: eleven(dense(10, { activation: 'softmax' })) })) as { model: unknown };
    assert.equal((ok.model as { layers: unknown[] }).layers.length, 11);
  });

  it('refuses a duplicate layer name, given or derived', () => {
    assert.deepEqual(refused(spec({ layers: [dense(4, { name: 'x' }), dense(2, { name: 'x' })] })), {
      field: 'model.layers[1].name',
      message: 'duplicate layer name x',
    });
    assert.deepEqual(refused(spec({ layers: [dense(4), dense(2, { name: 'dense1' })] })), {
      field: 'model.layers[1].name',
      message: 'duplicate layer name dense1',
    });
  });

  it('names the field inside the model form the input meant (tfjs, registered, layers)', () => {
    assert.deepEqual(refused(spec({ tfjs: 'model.json' })), {
      field: 'model.tfjs',
      message: 'must be file://PATH/model.json (or s3://, gs://, az://)',
    });
    assert.deepEqual(refused(spec({ registered: '9lives' })), {
      field: 'model.registered',
      message: 'must be a name like my-model (letters, digits, _ . -)',
    });
    assert.deepEqual(refused(spec({ layers: [] })), { field: 'model.layers', message: 'must be >= 1, got []' });
    assert.equal(refused(spec(5)).field, 'model');
  });

  it('a layer list model gets no dropout, and its freeze names its weighted layers', () => {
    const layers = [{ type: 'flatten' }, dense(8), { type: 'dropout', rate: 0.5 }, dense(2, { name: 'out' })];
    const ok = validateSpec(spec({ layers }, { freeze: ['dense2'] }));
    assert.ok(!('dropout' in ok), 'no dropout field for a layer list');
    assert.deepEqual(ok.freeze, ['dense2']);
    assert.deepEqual(refused(spec({ layers }, { freeze: ['flatten1'] })), {
      field: 'freeze[0]',
      message: 'unknown layer "flatten1" for this model (layers: dense2, out)',
    });
    assert.deepEqual(refused(spec({ layers }, { freeze: ['out', 'dense2'] })), {
      field: 'freeze',
      message: 'freezes every layer: nothing would train',
    });
    assert.deepEqual(refused(spec({ layers }, { dropout: 0.5 })), {
      field: 'dropout',
      message: 'applies to the built-in models only; a layer list has dropout layers of its own',
    });
    // a registered model's layers are known in the worker only: any name passes here
    assert.deepEqual(validateSpec(spec({ registered: 'mine' }, { freeze: ['anything'] })).freeze, ['anything']);
  });

  it('labels a model and a dataset for listings', () => {
    assert.equal(modelLabel('mnist-cnn'), 'mnist-cnn');
    assert.equal(modelLabel({ layers: [dense(4), dense(2)] }), 'layers-2');
    assert.equal(modelLabel({ registered: 'mine' }), 'mine');
    assert.equal(modelLabel({ tfjs: 's3://b/models/model.json' }), 'tfjs-model.json');
    assert.equal(datasetLabel({ name: 'iris' }), 'iris');
    assert.equal(datasetLabel({ registered: 'rows' }), 'rows');
    const file = { label: 'y' } as const;
    assert.equal(datasetLabel({ ...file, format: 'csv', path: 'file://data/x.csv' }), 'csv:x.csv');
    assert.equal(
      datasetLabel({ ...file, format: 'jsonl', train: 's3://b/t.jsonl', test: 's3://b/u.jsonl' }),
      'jsonl:t.jsonl',
    );
    assert.equal(datasetLabel({ ...file, format: 'csv', path: 'file://dir/' }), 'csv:file://dir/');
  });
});
