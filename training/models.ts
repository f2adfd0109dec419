// The models, built with tf.layers (so model.save can export them) but trained by our own forward
// pass: it walks the layers, reads their variables under stable names of our own, applies dropout
// with masks from our PRNG, and computes conv gradients with ops every backend has.
import { createHash } from 'crypto';
import * as tf from '@tensorflow/tfjs';
import type { ModelName } from '../spec/types';
import { IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES } from './datasets';
import type { Prng } from './prng';

export const MODEL_NAMES: readonly ModelName[] = ['mnist-mlp', 'mnist-cnn'];

export interface Param {
  /** Stable name, e.g. model/conv1/kernel; independent of tfjs's global name counters. */
  name: string;
  shape: number[];
  variable: tf.Variable;
  role: 'kernel' | 'bias';
  fanIn: number;
  fanOut: number;
}

/** Returns a mask tensor of `shape` (inverted dropout: 0 or 1/(1-rate)), or null for no dropout. */
export type DropoutMaskFn = (shape: number[], rate: number) => tf.Tensor | null;

type Cfg = Record<string, unknown>;

function pair(v: unknown): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2) return [Number(v[0]), Number(v[1])];
  throw new Error(`models: unexpected size ${JSON.stringify(v)}`);
}

// Conv gradients as forward convolutions. The wasm backend has no Conv2DBackpropFilter kernel
// (tfjs #8474) and its Conv2DBackpropInput is slow, while Conv2D (XNNPACK) is fast everywhere.
// Using the same ops on every backend also keeps numerics independent of which kernels happen to be
// registered in a process.

/** Gradient of a stride-1 'valid' conv2d with respect to its [kh, kw, ci, co] filter. */
export function conv2dFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    // Correlate each input channel (as a batch) with dy (batch as channels): [ci, kh, kw, co].
    const g = tf.conv2d(tf.transpose(x, [3, 1, 2, 0]), tf.transpose(dy, [1, 2, 0, 3]), 1, 'valid');
    return tf.transpose(g, [1, 2, 0, 3]);
  });
}

/** Gradient of a stride-1 'valid' conv2d with respect to its input: a full convolution of dy. */
export function conv2dInputGrad(dy: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw] = w.shape;
    const padded = tf.pad(dy, [
      [0, 0],
      [kh - 1, kh - 1],
      [kw - 1, kw - 1],
      [0, 0],
    ]);
    return tf.conv2d(padded, tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]), 1, 'valid');
  });
}

function makeConv(inputGrad: boolean): (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D {
  const op = tf.customGrad(((x: tf.Tensor4D, w: tf.Tensor4D, save: tf.GradSaveFunc) => {
    save([x, w]);
    return {
      value: tf.conv2d(x, w, 1, 'valid'),
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sw] = saved as [tf.Tensor4D, tf.Tensor4D];
        // The first layer's input is data: its gradient is never used, so skip the work.
        const dx = inputGrad ? conv2dInputGrad(dy, sw) : tf.zerosLike(sx);
        return [dx, conv2dFilterGrad(sx, dy)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor4D>>[0]);
  return (x, w) => op(x, w);
}
const convWithInputGrad = makeConv(true);
const convWithoutInputGrad = makeConv(false);

// x·w with gradients from explicit transposes: wasm's transposed matMuls are several times slower.
function makeMatMul(inputGrad: boolean): (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D {
  const op = tf.customGrad(((x: tf.Tensor2D, w: tf.Tensor2D, save: tf.GradSaveFunc) => {
    save([x, w]);
    return {
      value: tf.matMul(x, w),
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dx = inputGrad ? tf.matMul(dy, tf.transpose(sw)) : tf.zerosLike(sx);
        return [dx, tf.matMul(tf.transpose(sx), dy)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor2D>>[0]);
  return (x, w) => op(x, w);
}
const matMulWithInputGrad = makeMatMul(true);
const matMulWithoutInputGrad = makeMatMul(false);

function activate(x: tf.Tensor, activation: unknown, isLast: boolean): tf.Tensor {
  if (activation === 'relu') return tf.relu(x);
  if (activation === 'linear' || activation === undefined || activation === null) return x;
  // The exported model ends in softmax; training and evaluation work on the logits before it.
  if (activation === 'softmax' && isLast) return x;
  throw new Error(`models: unsupported activation ${JSON.stringify(activation)}`);
}

export class Net {
  readonly params: Param[];
  readonly fingerprint: string;
  readonly parameterCount: number;
  private readonly byLayer = new Map<string, { kernel: tf.Variable; bias: tf.Variable }>();
  private disposed = false;

  constructor(
    readonly name: ModelName,
    readonly dropoutRate: number,
    /** The tf.layers model; its variables ARE the trained weights, so it can be saved as is. */
    readonly model: tf.Sequential,
  ) {
    this.params = [];
    for (const layer of model.layers) {
      const weights = layer.trainableWeights;
      if (weights.length === 0) continue;
      const cls = layer.getClassName();
      const kernelLv = weights.find((w) => w.originalName.endsWith('/kernel'));
      const biasLv = weights.find((w) => w.originalName.endsWith('/bias'));
      if (weights.length !== 2 || !kernelLv || !biasLv)
        throw new Error(`models: layer ${layer.name} must have a kernel and a bias`);
      const kernel = kernelLv.read() as tf.Variable;
      const bias = biasLv.read() as tf.Variable;
      const ks = kernel.shape.slice();
      let fanIn: number;
      let fanOut: number;
      if (cls === 'Conv2D') {
        const receptive = ks[0] * ks[1];
        fanIn = ks[2] * receptive;
        fanOut = ks[3] * receptive;
      } else if (cls === 'Dense') {
        [fanIn, fanOut] = ks;
      } else {
        throw new Error(`models: unsupported layer with weights: ${cls}`);
      }
      this.byLayer.set(layer.name, { kernel, bias });
      this.params.push({
        name: `model/${layer.name}/kernel`,
        shape: ks,
        variable: kernel,
        role: 'kernel',
        fanIn,
        fanOut,
      });
      this.params.push({
        name: `model/${layer.name}/bias`,
        shape: bias.shape.slice(),
        variable: bias,
        role: 'bias',
        fanIn,
        fanOut,
      });
    }
    const names = this.params.map((p) => p.name);
    if (new Set(names).size !== names.length) throw new Error(`models: duplicate weight names in ${name}`);
    const sorted = [...this.params].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.fingerprint = createHash('sha256')
      .update(JSON.stringify({ model: name, weights: sorted.map((p) => [p.name, p.shape]) }))
      .digest('hex');
    this.parameterCount = this.params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  }

  /** Glorot-uniform kernels and zero biases, all drawn in JS from our PRNG: identical on every backend. */
  initialize(rng: Prng): void {
    for (const p of this.params) {
      const size = p.shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(size);
      if (p.role === 'kernel') {
        const limit = Math.sqrt(6 / (p.fanIn + p.fanOut));
        for (let i = 0; i < size; i++) values[i] = (2 * rng.nextFloat() - 1) * limit;
      }
      tf.tidy(() => p.variable.assign(tf.tensor(values, p.shape, 'float32')));
    }
  }

  /**
   * Logits [batch, 10] for images [batch, 28, 28, 1]. With `dropoutMask` (training), every Dropout
   * layer multiplies by the mask it returns; without it, dropout is the identity (inference).
   */
  forward(x: tf.Tensor4D, dropoutMask?: DropoutMaskFn): tf.Tensor2D {
    if (this.disposed) throw new Error('models: the model has been disposed');
    const layers = this.model.layers;
    let h: tf.Tensor = x;
    // Until the first layer with weights, h depends only on data and needs no gradient.
    let first = true;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i];
      const cfg = layer.getConfig() as Cfg;
      const isLast = i === layers.length - 1;
      switch (layer.getClassName()) {
        case 'Conv2D': {
          const v = this.byLayer.get(layer.name)!;
          const strides = pair(cfg.strides);
          const dil = pair(cfg.dilationRate);
          if (cfg.padding !== 'valid' || strides[0] !== 1 || strides[1] !== 1 || dil[0] !== 1 || dil[1] !== 1) {
            throw new Error(`models: ${layer.name}: only stride-1 'valid' undilated convolutions are supported`);
          }
          const conv = first ? convWithoutInputGrad : convWithInputGrad;
          h = activate(tf.add(conv(h as tf.Tensor4D, v.kernel as tf.Tensor4D), v.bias), cfg.activation, isLast);
          first = false;
          break;
        }
        case 'MaxPooling2D': {
          h = tf.maxPool(h as tf.Tensor4D, pair(cfg.poolSize), pair(cfg.strides), cfg.padding as 'valid' | 'same');
          break;
        }
        case 'Flatten':
          h = tf.reshape(h, [h.shape[0], -1]);
          break;
        case 'Dropout': {
          const rate = Number(cfg.rate);
          const mask = dropoutMask && rate > 0 ? dropoutMask(h.shape, rate) : null;
          if (mask) h = tf.mul(h, mask);
          break;
        }
        case 'Dense': {
          const v = this.byLayer.get(layer.name)!;
          const matMul = first ? matMulWithoutInputGrad : matMulWithInputGrad;
          h = activate(tf.add(matMul(h as tf.Tensor2D, v.kernel as tf.Tensor2D), v.bias), cfg.activation, isLast);
          first = false;
          break;
        }
        default:
          throw new Error(`models: unsupported layer ${layer.getClassName()} (${layer.name})`);
      }
    }
    if (h.rank !== 2 || h.shape[1] !== NUM_CLASSES) throw new Error(`models: output shape ${JSON.stringify(h.shape)}`);
    return h as tf.Tensor2D;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
  }
}

/** Builds a model with zero-initialized weights (no tfjs random initializers); call initialize() next. */
export function buildModel(name: ModelName, dropoutRate: number): Net {
  if (!(dropoutRate >= 0 && dropoutRate < 1)) throw new Error(`dropout must be in [0, 1), got ${dropoutRate}`);
  const z = { kernelInitializer: 'zeros' as const, biasInitializer: 'zeros' as const };
  const inputShape = [IMAGE_HEIGHT, IMAGE_WIDTH, 1];
  const layers: tf.layers.Layer[] = [];
  const dropout = (layerName: string) => {
    if (dropoutRate > 0) layers.push(tf.layers.dropout({ name: layerName, rate: dropoutRate }));
  };
  if (name === 'mnist-mlp') {
    layers.push(tf.layers.flatten({ name: 'flatten', inputShape }));
    layers.push(tf.layers.dense({ name: 'dense1', units: 128, activation: 'relu', ...z }));
    dropout('dropout1');
    layers.push(tf.layers.dense({ name: 'dense2', units: NUM_CLASSES, activation: 'softmax', ...z }));
  } else if (name === 'mnist-cnn') {
    layers.push(tf.layers.conv2d({ name: 'conv1', filters: 32, kernelSize: 3, activation: 'relu', inputShape, ...z }));
    layers.push(tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }));
    layers.push(tf.layers.conv2d({ name: 'conv2', filters: 64, kernelSize: 3, activation: 'relu', ...z }));
    layers.push(tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }));
    dropout('dropout1');
    layers.push(tf.layers.flatten({ name: 'flatten' }));
    layers.push(tf.layers.dense({ name: 'dense1', units: 128, activation: 'relu', ...z }));
    dropout('dropout2');
    layers.push(tf.layers.dense({ name: 'dense2', units: NUM_CLASSES, activation: 'softmax', ...z }));
  } else {
    throw new Error(`unknown model ${JSON.stringify(name)} (available: ${MODEL_NAMES.join(', ')})`);
  }
  const model = tf.sequential({ layers });
  return new Net(name, dropoutRate, model);
}
