// The layers a spec's model may list, and the check of each one's options. Pure (no tfjs): the spec schema runs it
// before anything starts; training/layers.ts builds and runs the same kinds.

export interface LayerSpec {
  type: string;
  [option: string]: unknown;
}

/** Layer kinds by spec name: the tfjs layer class each builds, and the options (besides type and name) it accepts. */
export const LAYER_KINDS: Record<string, { className: string; options: readonly string[] }> = {
  dense: { className: 'Dense', options: ['units', 'activation', 'useBias', 'inputShape'] },
  conv2d: {
    className: 'Conv2D',
    options: ['filters', 'kernelSize', 'strides', 'padding', 'activation', 'useBias', 'dilationRate', 'inputShape'],
  },
  maxPooling2d: { className: 'MaxPooling2D', options: ['poolSize', 'strides', 'padding', 'inputShape'] },
  averagePooling2d: { className: 'AveragePooling2D', options: ['poolSize', 'strides', 'padding', 'inputShape'] },
  globalAveragePooling2d: { className: 'GlobalAveragePooling2D', options: ['inputShape'] },
  flatten: { className: 'Flatten', options: ['inputShape'] },
  reshape: { className: 'Reshape', options: ['targetShape', 'inputShape'] },
  dropout: { className: 'Dropout', options: ['rate', 'inputShape'] },
  activation: { className: 'Activation', options: ['activation', 'inputShape'] },
  batchNormalization: {
    className: 'BatchNormalization',
    options: ['momentum', 'epsilon', 'center', 'scale', 'inputShape'],
  },
  embedding: { className: 'Embedding', options: ['inputDim', 'outputDim', 'inputShape', 'inputLength'] },
};

export const LAYER_TYPES = Object.keys(LAYER_KINDS);

/** Layer types that hold weights (what `freeze` may name). */
export const WEIGHTED_TYPES = ['dense', 'conv2d', 'batchNormalization', 'embedding'];

/** The name a listed layer gets: its own `name`, else `<type><1-based index>` (dense1, conv2d2, ...). */
export const layerNameOf = (l: LayerSpec, i: number): string =>
  typeof l.name === 'string' ? l.name : `${l.type}${i + 1}`;

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
  const kind = LAYER_KINDS[spec.type];
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
