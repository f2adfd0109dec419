// The models, built with tf.layers (so model.save can export them) but trained by our own forward
// pass: it walks the layers, reads their variables under stable names of our own, applies dropout
// with masks from our PRNG, and computes conv gradients with ops every backend has.
import { createHash } from 'crypto';
import * as tf from '@tensorflow/tfjs';
import type { ModelName, RunSpec } from '../spec/types';
import { IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES } from './datasets';
import { ConfigError } from './errors';
import { registeredModel } from './registry';
import { storeRoots } from './task-data';
import { loadTfjsModel } from './tfjs-model';
import { activate, buildLayer, LayerError, pair, SUPPORTED_CLASSES, type LayerSpec } from './layers';
import {
  fusedConvAgrees,
  hasMklPooling,
  mklFusedConv2D,
  mklMaxPool,
  mklMaxPoolGrad,
  TF_RELU_GRAD,
} from './kernels/tensorflow';
import type { NumericsVersion } from './numerics';
import type { Prng } from './prng';

export const MODEL_NAMES: readonly ModelName[] = ['mnist-mlp', 'mnist-cnn'];

export type ParamRole = 'kernel' | 'bias' | 'gamma' | 'beta' | 'embeddings' | 'moving_mean' | 'moving_variance';

export interface Param {
  /** Stable name, e.g. model/conv1/kernel; independent of tfjs's global name counters. */
  name: string;
  shape: number[];
  variable: tf.Variable;
  role: ParamRole;
  fanIn: number;
  fanOut: number;
}

/** Returns a mask tensor of `shape` (inverted dropout: 0 or 1/(1-rate)), or null for no dropout. */
export type DropoutMaskFn = (shape: number[], rate: number) => tf.Tensor | null;

/** Batch-norm moving statistics computed by a training forward pass, assigned by the trainer after the update. */
export type StateUpdates = Array<[tf.Variable, tf.Tensor]>;

type Cfg = Record<string, unknown>;

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

/**
 * y = value(x, w) with its gradients from `dx` and `dw`, as one tape op. `inputGrad` false: the first layer's input is
 * data, its gradient is never used, so that work is skipped (zeros). dx is computed before dw, as the math requires
 * for the same float32 results on every run.
 */
function withGrads<T extends tf.Tensor>(
  value: (x: T, w: T) => T,
  dx: (dy: T, x: T, w: T) => T,
  dw: (dy: T, x: T, w: T) => T,
  inputGrad: boolean,
): (x: T, w: T) => T {
  const op = tf.customGrad(((x: T, w: T, save: tf.GradSaveFunc) => {
    save([x, w]);
    return {
      value: value(x, w),
      gradFunc: (dy: T, saved: tf.Tensor[]) => {
        const [sx, sw] = saved as [T, T];
        const gx = inputGrad ? dx(dy, sx, sw) : (tf.zerosLike(sx) as T);
        return [gx, dw(dy, sx, sw)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<T>>[0]);
  return (x, w) => op(x, w);
}

const conv = (x: tf.Tensor4D, w: tf.Tensor4D) => tf.conv2d(x, w, 1, 'valid');
const convPortable = (inputGrad: boolean) =>
  withGrads<tf.Tensor4D>(
    conv,
    (dy, _x, w) => conv2dInputGrad(dy, w),
    (dy, x) => conv2dFilterGrad(x, dy),
    inputGrad,
  );
const convWithInputGrad = convPortable(true);
const convWithoutInputGrad = convPortable(false);

// Numerics 2: the backend's own conv-gradient kernels (oneDNN's on the tensorflow backend: fewer, faster ops than
// the forward-convolution form above, with different float32 rounding).
const VALID_1 = { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dimRoundingMode: undefined } as const;
const nativeConvInputGrad = (dy: tf.Tensor4D, x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D =>
  tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, {
    ...VALID_1,
    inputShape: x.shape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
const nativeConvFilterGrad = (dy: tf.Tensor4D, x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D =>
  tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
    ...VALID_1,
    filterShape: w.shape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
const convNative = (inputGrad: boolean) =>
  withGrads<tf.Tensor4D>(conv, nativeConvInputGrad, nativeConvFilterGrad, inputGrad);
const nativeConvWithInputGrad = convNative(true);
const nativeConvWithoutInputGrad = convNative(false);

// Numerics 2 on tensorflow: conv, bias and relu (or no activation) as one oneDNN kernel, the same bits as the three ops
// (kernels/tensorflow.ts). Its gradient is theirs: TensorFlow's ReluGrad (given the relu's output, which is positive
// exactly where its input is), the bias gradient as tfjs's Add gradient computes it (the sum over every axis but the
// last), and the conv gradients of convNative from that.
const convBiasActNative = (inputGrad: boolean, relu: boolean) =>
  tf.customGrad(((x: tf.Tensor4D, w: tf.Tensor4D, bias: tf.Tensor1D, save: tf.GradSaveFunc) => {
    const y = mklFusedConv2D(x, w, bias, relu);
    save([x, w, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sw, sy] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        const dz = relu ? (tf.engine().runKernel(TF_RELU_GRAD, { dy, x: sy }) as tf.Tensor4D) : dy;
        const gx = inputGrad ? nativeConvInputGrad(dz, sx, sw) : tf.zerosLike(sx);
        const gw = nativeConvFilterGrad(dz, sx, sw);
        const gb = tf.reshape(tf.sum(dz, [0, 1, 2]), [dz.shape[3]]);
        return [gx, gw, gb];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor4D>>[0]) as unknown as (
    x: tf.Tensor4D,
    w: tf.Tensor4D,
    bias: tf.Tensor1D,
  ) => tf.Tensor4D;
const fusedConvOps = {
  relu: [convBiasActNative(false, true), convBiasActNative(true, true)],
  linear: [convBiasActNative(false, false), convBiasActNative(true, false)],
};

// x·w with gradients from explicit transposes: wasm's transposed matMuls are several times slower.
const matMul = (x: tf.Tensor2D, w: tf.Tensor2D) => tf.matMul(x, w) as tf.Tensor2D;
const matMulPortable = (inputGrad: boolean) =>
  withGrads<tf.Tensor2D>(
    matMul,
    (dy, _x, w) => tf.matMul(dy, tf.transpose(w)),
    (dy, x) => tf.matMul(tf.transpose(x), dy),
    inputGrad,
  );
const matMulWithInputGrad = matMulPortable(true);
const matMulWithoutInputGrad = matMulPortable(false);

// Numerics 2: transposed matMuls (BatchMatMul's adjoint flags on the tensorflow backend), no separate transposes.
const matMulNative = (inputGrad: boolean) =>
  withGrads<tf.Tensor2D>(
    matMul,
    (dy, _x, w) => tf.matMul(dy, w, false, true),
    (dy, x) => tf.matMul(x, dy, true, false),
    inputGrad,
  );
const nativeMatMulWithInputGrad = matMulNative(true);
const nativeMatMulWithoutInputGrad = matMulNative(false);

// Numerics 2 on tensorflow: 'valid' max pooling by oneDNN, whose gradient scatters through the forward pass's workspace
// (kernels/tensorflow.ts). The workspace stays out of the tape, held here until the gradient uses it; one left by a
// forward pass whose gradient never ran (a failed step) is freed at the next training forward pass.
const pendingWorkspaces = new Set<tf.Tensor>();

function maxPoolOneDnn(h: tf.Tensor4D, ksize: [number, number], strides: [number, number]): tf.Tensor4D {
  const op = tf.customGrad(((x: tf.Tensor4D, save: tf.GradSaveFunc) => {
    const { y, workspace } = mklMaxPool(x, ksize, strides);
    save([x, y]);
    const kept = tf.keep(workspace);
    pendingWorkspaces.add(kept);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sy] = saved as [tf.Tensor4D, tf.Tensor4D];
        const g = mklMaxPoolGrad(sx, sy, dy, kept, ksize, strides);
        pendingWorkspaces.delete(kept);
        kept.dispose();
        return g;
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor4D>>[0]);
  return op(h);
}

const ROLES: ParamRole[] = ['kernel', 'bias', 'gamma', 'beta', 'embeddings', 'moving_mean', 'moving_variance'];

function fans(role: ParamRole, shape: number[]): [number, number] {
  if (role !== 'kernel') return [0, 0];
  if (shape.length === 4) {
    const receptive = shape[0] * shape[1];
    return [shape[2] * receptive, shape[3] * receptive];
  }
  return [shape[0], shape[1]];
}

export class Net {
  /** Trainable weights: the optimizer updates these. */
  readonly params: Param[];
  /** Non-trainable weights (batch-norm moving statistics): saved and restored like params, never given to the optimizer. */
  readonly state: Param[];
  readonly fingerprint: string;
  readonly parameterCount: number;
  /** Set when the weights came with the model (a model.json with weights): initialize() is then not called. */
  pretrained = false;
  /** The gradient math of training forward passes (see numerics.ts); the trainer sets it. */
  numerics: NumericsVersion = 1;
  private readonly byLayer = new Map<string, Partial<Record<ParamRole, tf.Variable>>>();
  private disposed = false;

  constructor(
    readonly name: string,
    readonly dropoutRate: number,
    /** The tf.layers model; its variables ARE the trained weights, so it can be saved as is. */
    readonly model: tf.Sequential | tf.LayersModel,
    /** What besides the weights' names and shapes defines the topology (a layer list's options). */
    topology: unknown = null,
  ) {
    this.params = [];
    this.state = [];
    for (const layer of model.layers) {
      const cls = layer.getClassName();
      if (!SUPPORTED_CLASSES.has(cls) && cls !== 'InputLayer')
        throw new Error(`models: unsupported layer ${cls} (${layer.name})`);
      const trainable = new Set(layer.trainableWeights.map((w) => w.originalName));
      const vars: Partial<Record<ParamRole, tf.Variable>> = {};
      for (const lv of layer.weights) {
        const role = ROLES.find((r) => lv.originalName.endsWith(`/${r}`));
        if (!role) throw new Error(`models: layer ${layer.name} has an unexpected weight ${lv.originalName}`);
        const variable = lv.read() as tf.Variable;
        const shape = variable.shape.slice();
        const [fanIn, fanOut] = fans(role, shape);
        vars[role] = variable;
        const p: Param = { name: `model/${layer.name}/${role}`, shape, variable, role, fanIn, fanOut };
        (trainable.has(lv.originalName) ? this.params : this.state).push(p);
      }
      this.byLayer.set(layer.name, vars);
    }
    const names = this.all.map((p) => p.name);
    if (new Set(names).size !== names.length) throw new Error(`models: duplicate weight names in ${name}`);
    const sorted = [...this.all].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.fingerprint = createHash('sha256')
      .update(
        JSON.stringify({
          model: name,
          weights: sorted.map((p) => [p.name, p.shape]),
          ...(topology !== null ? { topology } : {}),
        }),
      )
      .digest('hex');
    this.parameterCount = this.params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  }

  /** Every weight of the model, trainable or not, in model order. */
  get all(): Param[] {
    return [...this.params, ...this.state];
  }

  /**
   * Initial values drawn in JS from our PRNG, identical on every backend: Glorot-uniform kernels, uniform(-0.05, 0.05)
   * embeddings (the Keras default), zero biases and betas, unit gammas; moving statistics start at mean 0, variance 1.
   */
  initialize(rng: Prng): void {
    for (const p of this.all) {
      const size = p.shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(size);
      if (p.role === 'kernel') {
        const limit = Math.sqrt(6 / (p.fanIn + p.fanOut));
        for (let i = 0; i < size; i++) values[i] = (2 * rng.nextFloat() - 1) * limit;
      } else if (p.role === 'embeddings') {
        for (let i = 0; i < size; i++) values[i] = (2 * rng.nextFloat() - 1) * 0.05;
      } else if (p.role === 'gamma' || p.role === 'moving_variance') values.fill(1);
      tf.tidy(() => p.variable.assign(tf.tensor(values, p.shape, 'float32')));
    }
  }

  /**
   * The model's outputs [batch, units] (logits when the last layer is softmax). With `dropoutMask` (training),
   * every Dropout layer multiplies by the mask it returns and batch normalization uses the batch's statistics,
   * pushing the new moving statistics to `updates`; without it (inference), dropout is the identity and batch
   * normalization uses the moving statistics.
   */
  forward(x: tf.Tensor, dropoutMask?: DropoutMaskFn, updates?: StateUpdates): tf.Tensor2D {
    if (this.disposed) throw new Error('models: the model has been disposed');
    if (dropoutMask && pendingWorkspaces.size) {
      tf.dispose([...pendingWorkspaces]);
      pendingWorkspaces.clear();
    }
    const layers = this.model.layers.filter((l) => l.getClassName() !== 'InputLayer');
    let h: tf.Tensor = x;
    // Until the first layer with weights, h depends only on data and needs no gradient.
    let first = true;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i];
      const cfg = layer.getConfig() as Cfg;
      const isLast = i === layers.length - 1;
      const v = this.byLayer.get(layer.name) ?? {};
      switch (layer.getClassName()) {
        case 'Conv2D': {
          const strides = pair(cfg.strides);
          const dil = pair(cfg.dilationRate);
          let y: tf.Tensor;
          const validStride1 =
            cfg.padding === 'valid' && strides[0] === 1 && strides[1] === 1 && dil[0] === 1 && dil[1] === 1;
          const act =
            cfg.activation === 'relu'
              ? 'relu'
              : cfg.activation == null || cfg.activation === 'linear'
                ? 'linear'
                : null;
          if (
            validStride1 &&
            this.numerics === 2 &&
            act &&
            v.bias &&
            fusedConvAgrees(h as tf.Tensor4D, v.kernel as tf.Tensor4D, v.bias as tf.Tensor1D, act === 'relu')
          ) {
            h = fusedConvOps[act][first ? 0 : 1](h as tf.Tensor4D, v.kernel as tf.Tensor4D, v.bias as tf.Tensor1D);
            first = false;
            break;
          }
          if (validStride1) {
            const conv =
              this.numerics === 2
                ? first
                  ? nativeConvWithoutInputGrad
                  : nativeConvWithInputGrad
                : first
                  ? convWithoutInputGrad
                  : convWithInputGrad;
            y = conv(h as tf.Tensor4D, v.kernel as tf.Tensor4D);
          } else {
            y = tf.conv2d(
              h as tf.Tensor4D,
              v.kernel as tf.Tensor4D,
              strides,
              cfg.padding as 'valid' | 'same',
              'NHWC',
              dil,
            );
          }
          h = activate(v.bias ? tf.add(y, v.bias) : y, cfg.activation, isLast, this.numerics === 2);
          first = false;
          break;
        }
        case 'MaxPooling2D':
          h =
            dropoutMask && this.numerics === 2 && cfg.padding === 'valid' && h.dtype === 'float32' && hasMklPooling()
              ? maxPoolOneDnn(h as tf.Tensor4D, pair(cfg.poolSize), pair(cfg.strides))
              : tf.maxPool(h as tf.Tensor4D, pair(cfg.poolSize), pair(cfg.strides), cfg.padding as 'valid' | 'same');
          break;
        case 'AveragePooling2D':
          h = tf.avgPool(h as tf.Tensor4D, pair(cfg.poolSize), pair(cfg.strides), cfg.padding as 'valid' | 'same');
          break;
        case 'GlobalAveragePooling2D':
          h = tf.mean(h, [1, 2]);
          break;
        case 'Flatten':
          h = tf.reshape(h, [h.shape[0], -1]);
          break;
        case 'Reshape':
          h = tf.reshape(h, [h.shape[0], ...(cfg.targetShape as number[])]);
          break;
        case 'Dropout': {
          const rate = Number(cfg.rate);
          const mask = dropoutMask && rate > 0 ? dropoutMask(h.shape, rate) : null;
          if (mask) h = tf.mul(h, mask);
          break;
        }
        case 'Activation':
          h = activate(h, cfg.activation, isLast, this.numerics === 2);
          break;
        case 'Dense': {
          const matMul =
            this.numerics === 2
              ? first
                ? nativeMatMulWithoutInputGrad
                : nativeMatMulWithInputGrad
              : first
                ? matMulWithoutInputGrad
                : matMulWithInputGrad;
          const inner = h.shape[h.rank - 1];
          const flat = h.rank === 2 ? (h as tf.Tensor2D) : tf.reshape(h, [-1, inner]);
          let y: tf.Tensor = matMul(flat as tf.Tensor2D, v.kernel as tf.Tensor2D);
          if (h.rank !== 2) y = tf.reshape(y, [...h.shape.slice(0, -1), y.shape[1] as number]);
          h = activate(v.bias ? tf.add(y, v.bias) : y, cfg.activation, isLast, this.numerics === 2);
          first = false;
          break;
        }
        case 'BatchNormalization': {
          h = batchNorm(h, v, cfg, dropoutMask ? (updates ?? []) : null);
          first = false;
          break;
        }
        case 'Embedding': {
          // One-hot times the table: gradients by matMul on every backend (gather's needs UnsortedSegmentSum,
          // which the wasm backend lacks).
          const table = v.embeddings as tf.Tensor2D;
          const [inputDim, outputDim] = table.shape;
          const ids = tf.cast(tf.reshape(h, [-1]), 'int32');
          const rows = tf.matMul(tf.oneHot(ids, inputDim, 1, 0, 'float32') as tf.Tensor2D, table);
          h = tf.reshape(rows, [...h.shape, outputDim]);
          first = false;
          break;
        }
        default:
          throw new Error(`models: unsupported layer ${layer.getClassName()} (${layer.name})`);
      }
    }
    if (h.rank !== 2) throw new Error(`models: output shape ${JSON.stringify(h.shape)}: expected [batch, units]`);
    return h as tf.Tensor2D;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
  }
}

/** Batch normalization over the last axis; in training (`updates` given) with batch statistics. */
function batchNorm(
  h: tf.Tensor,
  v: Partial<Record<ParamRole, tf.Variable>>,
  cfg: Cfg,
  updates: StateUpdates | null,
): tf.Tensor {
  const eps = Number(cfg.epsilon ?? 1e-3);
  const momentum = Number(cfg.momentum ?? 0.99);
  const axes = h.shape.slice(0, -1).map((_, i) => i);
  let mean: tf.Tensor;
  let variance: tf.Tensor;
  if (updates) {
    const m = tf.moments(h, axes);
    mean = m.mean;
    variance = m.variance;
    const mm = v.moving_mean!;
    const mv = v.moving_variance!;
    updates.push([mm, tf.keep(tf.add(tf.mul(mm, momentum), tf.mul(mean, 1 - momentum)))]);
    updates.push([mv, tf.keep(tf.add(tf.mul(mv, momentum), tf.mul(variance, 1 - momentum)))]);
  } else {
    mean = v.moving_mean!;
    variance = v.moving_variance!;
  }
  let y = tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, eps)));
  if (v.gamma) y = tf.mul(y, v.gamma);
  if (v.beta) y = tf.add(y, v.beta);
  return y;
}

/** A model from a checked layer list (see layers.ts), zero-initialized; call initialize() next. */
export function buildFromLayers(layers: LayerSpec[], inputShape: number[]): Net {
  const used = new Set<string>();
  const built = layers.map((l, i) => {
    const name = typeof l.name === 'string' ? l.name : `${l.type}${i + 1}`;
    if (used.has(name)) throw new LayerError(i, 'name', `duplicate layer name ${name}`);
    used.add(name);
    const spec = i === 0 && l.inputShape === undefined ? { ...l, inputShape } : l;
    try {
      return buildLayer(spec, name);
    } catch (err) {
      throw new LayerError(i, '', (err as Error).message);
    }
  });
  let model: tf.Sequential;
  try {
    model = tf.sequential({ layers: built });
  } catch (err) {
    throw new ConfigError(`model: the layers do not fit together: ${(err as Error).message}`);
  }
  return new Net('layers', 0, model, layers);
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

/** The model a spec names, zero-initialized: a built-in, or a layer list whose input is one example of `inputShape`. */
export async function buildNet(
  spec: RunSpec,
  inputShape: number[],
  outputs: number,
  /** For a registered model outside its worker (export): the topology its checkpoint recorded. */
  topology?: unknown,
): Promise<Net> {
  if (typeof spec.model === 'object' && 'registered' in spec.model && topology) {
    const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
    return new Net(spec.model.registered, 0, model, { registered: spec.model.registered, topology });
  }
  if (typeof spec.model === 'object' && 'tfjs' in spec.model) {
    const loaded = await loadTfjsModel(spec.model.tfjs, process.cwd(), storeRoots(spec, process.cwd()));
    const net = new Net('tfjs', 0, loaded.model, { tfjs: loaded.topology });
    net.pretrained = loaded.pretrained;
    return net;
  }
  if (typeof spec.model === 'object' && 'registered' in spec.model) {
    const name = spec.model.registered;
    let model: tf.LayersModel;
    try {
      model = registeredModel(name)({ spec, inputShape, outputs });
    } catch (err) {
      if (err instanceof Error && err.name === 'RegistryError') throw err;
      throw new ConfigError(`model ${name}: its builder failed: ${(err as Error).message}`);
    }
    return new Net(name, 0, model, { registered: name, topology: model.toJSON(undefined, false) });
  }
  if (typeof spec.model === 'string')
    return buildModel(spec.model, spec.dropout ?? (spec.model === 'mnist-cnn' ? 0.25 : 0));
  return buildFromLayers(spec.model.layers, spec.model.inputShape ?? inputShape);
}
