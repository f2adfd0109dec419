// The layer kinds a model may use, by spec name. Each kind: the options it accepts (those of the tfjs layer of the
// same name), how to build the tf.layers layer (zero-initialized: our PRNG initializes weights, never tfjs), and its
// forward pass in our training loop (dropout masks from our PRNG, batch-norm statistics updated by the trainer).
// A new kind is one entry in KINDS plus, if it has its own math, one case in forwardLayer().
import * as tf from '@tensorflow/tfjs';

export interface LayerSpec {
  type: string;
  [option: string]: unknown;
}

interface Kind {
  /** The tfjs layer class this kind builds (and that a loaded model.json may contain). */
  className: string;
  /** Options a spec may give, besides `type` and `name`. */
  options: readonly string[];
  build: (cfg: Record<string, unknown>) => tf.layers.Layer;
}

export const ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'tanh',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'softmax',
] as const;

const Z = { kernelInitializer: 'zeros', biasInitializer: 'zeros' } as const;
// tf.layers' option types are precise per layer; the spec's options were checked against `options` above.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCfg = any;

export const KINDS: Record<string, Kind> = {
  dense: {
    className: 'Dense',
    options: ['units', 'activation', 'useBias', 'inputShape'],
    build: (c) => tf.layers.dense({ ...(c as AnyCfg), ...Z }),
  },
  conv2d: {
    className: 'Conv2D',
    options: ['filters', 'kernelSize', 'strides', 'padding', 'activation', 'useBias', 'dilationRate', 'inputShape'],
    build: (c) => tf.layers.conv2d({ ...(c as AnyCfg), ...Z }),
  },
  maxPooling2d: {
    className: 'MaxPooling2D',
    options: ['poolSize', 'strides', 'padding', 'inputShape'],
    build: (c) => tf.layers.maxPooling2d(c as AnyCfg),
  },
  averagePooling2d: {
    className: 'AveragePooling2D',
    options: ['poolSize', 'strides', 'padding', 'inputShape'],
    build: (c) => tf.layers.averagePooling2d(c as AnyCfg),
  },
  globalAveragePooling2d: {
    className: 'GlobalAveragePooling2D',
    options: ['inputShape'],
    build: (c) => tf.layers.globalAveragePooling2d(c as AnyCfg),
  },
  flatten: { className: 'Flatten', options: ['inputShape'], build: (c) => tf.layers.flatten(c as AnyCfg) },
  reshape: {
    className: 'Reshape',
    options: ['targetShape', 'inputShape'],
    build: (c) => tf.layers.reshape(c as AnyCfg),
  },
  dropout: { className: 'Dropout', options: ['rate', 'inputShape'], build: (c) => tf.layers.dropout(c as AnyCfg) },
  activation: {
    className: 'Activation',
    options: ['activation', 'inputShape'],
    build: (c) => tf.layers.activation(c as AnyCfg),
  },
  batchNormalization: {
    className: 'BatchNormalization',
    options: ['momentum', 'epsilon', 'center', 'scale', 'inputShape'],
    build: (c) =>
      tf.layers.batchNormalization({
        ...(c as AnyCfg),
        axis: -1,
        betaInitializer: 'zeros',
        gammaInitializer: 'ones',
        movingMeanInitializer: 'zeros',
        movingVarianceInitializer: 'ones',
      }),
  },
  embedding: {
    className: 'Embedding',
    options: ['inputDim', 'outputDim', 'inputShape', 'inputLength'],
    build: (c) => tf.layers.embedding({ ...(c as AnyCfg), embeddingsInitializer: 'zeros' }),
  },
};

export const LAYER_TYPES = Object.keys(KINDS);
export const SUPPORTED_CLASSES = new Set(Object.values(KINDS).map((k) => k.className));

export class LayerError extends Error {
  constructor(
    readonly index: number,
    readonly field: string,
    message: string,
  ) {
    super(`model.layers[${index}]${field ? `.${field}` : ''}: ${message}`);
    this.name = 'LayerError';
  }
}

const isPosInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1_000_000;
const isShape = (v: unknown) => Array.isArray(v) && v.length >= 1 && v.length <= 4 && v.every(isPosInt);
const isSize = (v: unknown) => isPosInt(v) || (Array.isArray(v) && v.length === 2 && v.every(isPosInt));

/** Checks one layer of a spec's layer list; throws a LayerError naming the layer, its index and what is allowed. */
export function checkLayerSpec(l: unknown, i: number, isLast: boolean): void {
  if (!l || typeof l !== 'object' || Array.isArray(l)) throw new LayerError(i, '', 'must be an object with a "type"');
  const spec = l as LayerSpec;
  const kind = KINDS[spec.type];
  if (!kind)
    throw new LayerError(
      i,
      'type',
      `unsupported layer ${JSON.stringify(spec.type)} (supported: ${LAYER_TYPES.join(', ')})`,
    );
  for (const k of Object.keys(spec)) {
    if (k !== 'type' && k !== 'name' && !kind.options.includes(k))
      throw new LayerError(
        i,
        k,
        `unsupported option for ${spec.type} (supported: name, ${kind.options.join(', ') || 'none'})`,
      );
  }
  const need = (k: string, ok: (v: unknown) => boolean, what: string, required = false) => {
    if (spec[k] === undefined) {
      if (required) throw new LayerError(i, k, `missing (${spec.type} needs ${what})`);
      return;
    }
    if (!ok(spec[k])) throw new LayerError(i, k, `must be ${what}, got ${JSON.stringify(spec[k])}`);
  };
  need('name', (v) => typeof v === 'string' && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(v), 'a name like dense_1');
  need('inputShape', isShape, 'a list of 1 to 4 positive integers');
  need('units', isPosInt, 'a positive integer', spec.type === 'dense');
  need('filters', isPosInt, 'a positive integer', spec.type === 'conv2d');
  need('kernelSize', isSize, 'a positive integer or [h, w]', spec.type === 'conv2d');
  need('strides', isSize, 'a positive integer or [h, w]');
  need('dilationRate', isSize, 'a positive integer or [h, w]');
  need('poolSize', isSize, 'a positive integer or [h, w]');
  need('padding', (v) => v === 'valid' || v === 'same', '"valid" or "same"');
  need('useBias', (v) => typeof v === 'boolean', 'true or false');
  need('center', (v) => typeof v === 'boolean', 'true or false');
  need('scale', (v) => typeof v === 'boolean', 'true or false');
  need(
    'activation',
    (v) => (ACTIVATIONS as readonly unknown[]).includes(v),
    `one of ${ACTIVATIONS.join(', ')}`,
    spec.type === 'activation',
  );
  if (spec.activation === 'softmax' && !isLast)
    throw new LayerError(i, 'activation', 'softmax is supported on the last layer only (the loss works on logits)');
  need('rate', (v) => typeof v === 'number' && v >= 0 && v < 1, 'a number in [0, 1)', spec.type === 'dropout');
  need('momentum', (v) => typeof v === 'number' && v >= 0 && v < 1, 'a number in [0, 1)');
  need('epsilon', (v) => typeof v === 'number' && v > 0 && v < 1, 'a number in (0, 1)');
  need('targetShape', isShape, 'a list of 1 to 4 positive integers', spec.type === 'reshape');
  need('inputDim', isPosInt, 'a positive integer', spec.type === 'embedding');
  need('outputDim', isPosInt, 'a positive integer', spec.type === 'embedding');
  need('inputLength', isPosInt, 'a positive integer');
}

/** The tf.layers layer for a checked layer spec, zero-initialized, named `name`. */
export function buildLayer(spec: LayerSpec, name: string): tf.layers.Layer {
  const { type, name: _ignored, ...options } = spec;
  void _ignored;
  return KINDS[type].build({ ...options, name });
}

type Cfg = Record<string, unknown>;
export function pair(v: unknown): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2) return [Number(v[0]), Number(v[1])];
  throw new Error(`layers: unexpected size ${JSON.stringify(v)}`);
}

/** An activation by tfjs name. `softmax` on the last layer is left to the loss (logits), elsewhere refused. */
export function activate(x: tf.Tensor, activation: unknown, isLast: boolean): tf.Tensor {
  switch (activation) {
    case undefined:
    case null:
    case 'linear':
      return x;
    case 'relu':
      return tf.relu(x);
    case 'relu6':
      return tf.relu6(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'tanh':
      return tf.tanh(x);
    case 'elu':
      return tf.elu(x);
    case 'selu':
      return tf.selu(x);
    case 'softplus':
      return tf.softplus(x);
    case 'softsign':
      return tf.div(x, tf.add(tf.abs(x), 1));
    case 'softmax':
      if (isLast) return x;
  }
  throw new Error(`layers: unsupported activation ${JSON.stringify(activation)}`);
}

export const configOf = (layer: tf.layers.Layer): Cfg => layer.getConfig() as Cfg;
