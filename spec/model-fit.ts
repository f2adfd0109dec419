// Whether a model can be built and trained at all, before anything is allocated: every layer's output shape (a pool
// window larger than its input, a size that reaches zero, a reshape that does not hold its input) and the memory of
// training it (weights, gradients, optimizer slots, activations at the batch size) against a per-worker limit. Pure
// (no tfjs, no node built-ins): `start`'s preflight and the worker run the same function on the same numbers.
import { DurableTrainError } from './errors';
import { layerNameOf, type LayerSpec } from './layers';
import type { RunSpec } from './types';

export interface LayerFit {
  index: number;
  name: string;
  type: string;
  /** One example's output shape (no batch dimension). */
  outputShape: number[];
  params: number;
}

export interface ModelFitBytes {
  weights: number;
  /** Gradients and the optimizer's slots (momentum's velocity, Adam's two moments). */
  optimizer: number;
  /** Every layer's output and its gradient, at the batch size. */
  activations: number;
  total: number;
}

export interface ModelFit {
  layers: LayerFit[];
  params: number;
  bytes: ModelFitBytes;
}

export class ModelFitError extends DurableTrainError {
  readonly code = 'invalid' as const;

  override readonly name = 'ModelFitError';
}

const FLOAT = 4;
/** Slots per weight by optimizer, besides the gradient. */
const SLOTS: Record<string, number> = { sgd: 0, momentum: 1, adam: 2 };

const pair = (v: unknown, dflt: number): [number, number] =>
  v === undefined ? [dflt, dflt] : Array.isArray(v) ? [Number(v[0]), Number(v[1])] : [Number(v), Number(v)];
const product = (s: number[]) => s.reduce((a, b) => a * b, 1);
const fmt = (s: number[]) => `[${s.join(', ')}]`;

/** The built-in models as layer lists (the same layers models.ts builds). */
function builtinLayers(name: string, dropout: number): LayerSpec[] | null {
  const drop = (n: string): LayerSpec[] => (dropout > 0 ? [{ type: 'dropout', name: n, rate: dropout }] : []);
  if (name === 'mnist-mlp')
    return [
      { type: 'flatten', name: 'flatten' },
      { type: 'dense', name: 'dense1', units: 128 },
      ...drop('dropout1'),
      { type: 'dense', name: 'dense2', units: 10 },
    ];
  if (name === 'mnist-cnn')
    return [
      { type: 'conv2d', name: 'conv1', filters: 32, kernelSize: 3 },
      { type: 'maxPooling2d', name: 'pool1', poolSize: 2 },
      { type: 'conv2d', name: 'conv2', filters: 64, kernelSize: 3 },
      { type: 'maxPooling2d', name: 'pool2', poolSize: 2 },
      ...drop('dropout1'),
      { type: 'flatten', name: 'flatten' },
      { type: 'dense', name: 'dense1', units: 128 },
      ...drop('dropout2'),
      { type: 'dense', name: 'dense2', units: 10 },
    ];
  return null;
}

/** One spatial dimension of a window op (conv or pool) with its padding; throws naming the layer when it is empty. */
function windowed(size: number, window: number, stride: number, padding: unknown, fail: (m: string) => never): number {
  if (padding === 'same') return Math.ceil(size / stride);
  if (window > size) fail(`its window (${window}) is larger than its input (${size}) with padding "valid"`);
  return Math.floor((size - window) / stride) + 1;
}

/** One layer's output shape and parameter count from its input shape; throws a ModelFitError naming the layer. */
function layerFit(l: LayerSpec, index: number, input: number[]): LayerFit {
  const name = layerNameOf(l, index);
  const fail = (m: string): never => {
    throw new ModelFitError(`model.layers[${index}] (${name}, ${l.type}) on input ${fmt(input)}: ${m}`);
  };
  const spatial = () => {
    if (input.length !== 3) fail(`needs an input of [height, width, channels], got rank ${input.length}`);
    return input;
  };
  const last = input[input.length - 1];
  let out: number[] = input;
  let params = 0;
  switch (l.type) {
    case 'dense': {
      const units = Number(l.units);
      out = [...input.slice(0, -1), units];
      params = last * units + (l.useBias === false ? 0 : units);
      break;
    }
    case 'conv2d': {
      const [h, w, c] = spatial();
      const [kh, kw] = pair(l.kernelSize, 1);
      const [sh, sw] = pair(l.strides, 1);
      const [dh, dw] = pair(l.dilationRate, 1);
      const filters = Number(l.filters);
      out = [
        windowed(h, (kh - 1) * dh + 1, sh, l.padding, fail),
        windowed(w, (kw - 1) * dw + 1, sw, l.padding, fail),
        filters,
      ];
      params = kh * kw * c * filters + (l.useBias === false ? 0 : filters);
      break;
    }
    case 'maxPooling2d':
    case 'averagePooling2d': {
      const [h, w, c] = spatial();
      const [ph, pw] = pair(l.poolSize, 2);
      const [sh, sw] = l.strides === undefined ? [ph, pw] : pair(l.strides, 1);
      out = [windowed(h, ph, sh, l.padding, fail), windowed(w, pw, sw, l.padding, fail), c];
      break;
    }
    case 'globalAveragePooling2d':
      out = [spatial()[2]];
      break;
    case 'flatten':
      out = [product(input)];
      break;
    case 'reshape': {
      const target = (l.targetShape as number[]).map(Number);
      if (product(target) !== product(input))
        fail(`targetShape ${fmt(target)} holds ${product(target)} values, its input ${product(input)}`);
      out = target;
      break;
    }
    case 'batchNormalization':
      params = 4 * last;
      break;
    case 'embedding':
      out = [...input, Number(l.outputDim)];
      params = Number(l.inputDim) * Number(l.outputDim);
      break;
    default: // dropout, activation: the shape passes through
      break;
  }
  if (out.some((d) => !(Number.isInteger(d) && d >= 1))) fail(`its output shape ${fmt(out)} has an empty dimension`);
  return { index, name, type: l.type, outputShape: out, params };
}

/**
 * The fit of a spec's model on examples of `featureShape`: each layer's output shape and the memory of training it,
 * or a ModelFitError naming the layer that cannot be built or the model that does not fit in `maxBytes`. Null for
 * models whose layers are not in the spec (a registered builder, a tfjs model.json): those are built to be checked.
 */
export function checkModelFit(spec: RunSpec, featureShape: number[], maxBytes: number): ModelFit | null {
  const model = spec.model;
  let layers: LayerSpec[] | null;
  let input = featureShape;
  if (typeof model === 'string') layers = builtinLayers(model, spec.dropout ?? (model === 'mnist-cnn' ? 0.25 : 0));
  else if ('layers' in model) {
    layers = model.layers as LayerSpec[];
    input = (model.inputShape as number[] | undefined) ?? (layers[0]?.inputShape as number[] | undefined) ?? input;
  } else layers = null;
  if (!layers) return null;
  const fits: LayerFit[] = [];
  for (const [i, l] of layers.entries()) {
    const f = layerFit(l, i, input);
    fits.push(f);
    input = f.outputShape;
  }
  const params = fits.reduce((n, f) => n + f.params, 0);
  const slots = SLOTS[spec.optimizer.name] ?? 2;
  const perExample = product(featureShape) + fits.reduce((n, f) => n + product(f.outputShape), 0);
  const bytes: ModelFitBytes = {
    weights: params * FLOAT,
    optimizer: params * FLOAT * (1 + slots),
    activations: perExample * spec.batchSize * FLOAT * 2,
    total: 0,
  };
  bytes.total = bytes.weights + bytes.optimizer + bytes.activations;
  if (bytes.total > maxBytes) {
    const biggest = [...fits].sort(
      (a, b) =>
        b.params + product(b.outputShape) * spec.batchSize - (a.params + product(a.outputShape) * spec.batchSize),
    )[0];
    const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    throw new ModelFitError(
      `model: training needs about ${mb(bytes.total)} (weights ${mb(bytes.weights)}, gradients and ${spec.optimizer.name} ` +
        `slots ${mb(bytes.optimizer)}, activations at batch size ${spec.batchSize} ${mb(bytes.activations)}), more than ` +
        `this worker's limit of ${mb(maxBytes)} (DURABLE_TRAIN_MAX_MODEL_BYTES); the largest layer is ` +
        `model.layers[${biggest.index}] (${biggest.name}, ${biggest.params} weights, output ${fmt(biggest.outputShape)})`,
    );
  }
  return { layers: fits, params, bytes };
}
