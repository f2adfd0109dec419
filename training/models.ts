// The models, built with tf.layers (so model.save can export them) but trained by our own forward
// pass: it walks the layers, reads their variables under stable names of our own, applies dropout
// with masks from our PRNG, and computes conv gradients with ops every backend has.
import * as tf from '@tensorflow/tfjs';
import './tfjs-quiet';
import type { ModelName, RunSpec } from '../spec/types';
import { IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES } from './datasets';
import { ConfigError } from './errors';
import { register, registeredModel } from './registry';
import { WIDE_MLP, wideMlp } from './wide-mlp';
import { storeRoots } from './task-data';
import { loadTfjsModel } from './tfjs-model';
import type { WeightConstraint } from './keras-topology';
import {
  buildLayer,
  isLayerGraph,
  KINDS_BY_CLASS,
  LayerError,
  SUPPORTED_CLASSES,
  type LayerKind,
  type LayerSpec,
} from './layers';
import { buildLayerGraph, graphOf, MODEL_INPUT, type Graph } from './graph';
import type { DropoutMaskFn, ForwardContext, ParamRole, StateUpdates } from './layers/kind';
import { freePendingWorkspaces, maxPooling2d } from './layers/maxPooling2d';
import type { NumericsVersion } from './numerics';
import type { Prng } from './prng';
import * as fingerprints from './model-fingerprint';

export const MODEL_NAMES: readonly ModelName[] = ['mnist-mlp', 'mnist-cnn'];

// The built-in registered models (a spec names them { "registered": name }, like a library caller's own).
register({ models: { [WIDE_MLP]: wideMlp } });

export type { DropoutMaskFn, ParamRole, StateUpdates } from './layers/kind';
export { conv2dFilterGrad, conv2dInputGrad } from './layers/ops';

export interface Param {
  /** Stable name, e.g. model/conv1/kernel; independent of tfjs's global name counters (model-fingerprint.ts). */
  name: string;
  /** The name checkpoints without a fingerprint version stored it under: model/<tfjs layer name>/<role>. */
  legacyName?: string;
  shape: number[];
  variable: tf.Variable;
  role: ParamRole;
  fanIn: number;
  fanOut: number;
}

const KERNEL_ROLES: readonly ParamRole[] = ['kernel', 'depthwise_kernel', 'pointwise_kernel', 'recurrent_kernel'];

/** The default initial values of a weight, drawn from `rng` (see Net.initialize). */
function initialValues(p: Param, rng: Prng): Float32Array {
  const size = p.shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  if (p.role === 'recurrent_kernel') orthogonal(values, p.shape, rng);
  else if (KERNEL_ROLES.includes(p.role)) {
    const limit = Math.sqrt(6 / (p.fanIn + p.fanOut));
    for (let i = 0; i < size; i++) values[i] = (2 * rng.nextFloat() - 1) * limit;
  } else if (p.role === 'embeddings') {
    for (let i = 0; i < size; i++) values[i] = (2 * rng.nextFloat() - 1) * 0.05;
  } else if (p.role === 'gamma' || p.role === 'moving_variance') values.fill(1);
  return values;
}

/**
 * An orthogonal matrix of `shape` ([rows, cols], as Keras's Orthogonal initializer gives): standard normal draws from
 * `rng`, orthonormalized by modified Gram-Schmidt in float64 (deterministic in JS on every backend) along the
 * shorter side, each vector's sign fixed as QR's positive diagonal would.
 */
function orthogonal(out: Float32Array, shape: number[], rng: Prng): void {
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const cols = shape[shape.length - 1];
  // Orthonormal vectors of length `len`, `count` of them (count <= len): rows of the result, or its columns.
  const [count, len] = rows <= cols ? [rows, cols] : [cols, rows];
  const a = new Float64Array(rows * cols);
  for (let i = 0; i < a.length; i++) a[i] = rng.normal();
  const vec = (k: number) => a.subarray(k * len, (k + 1) * len);
  for (let k = 0; k < count; k++) {
    const v = vec(k);
    for (let j = 0; j < k; j++) {
      const u = vec(j);
      let dot = 0;
      for (let i = 0; i < len; i++) dot += u[i] * v[i];
      for (let i = 0; i < len; i++) v[i] -= dot * u[i];
    }
    let norm = 0;
    for (let i = 0; i < len; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < len; i++) v[i] /= norm;
  }
  for (let k = 0; k < count; k++)
    for (let i = 0; i < len; i++) out[rows <= cols ? k * cols + i : i * cols + k] = a[k * len + i];
}

/** Glorot fans of a kernel: [in, out] for a matrix, times the receptive field for a convolution's. */
function fans(role: ParamRole, shape: number[]): [number, number] {
  if (!KERNEL_ROLES.includes(role)) return [0, 0];
  if (shape.length >= 3) {
    const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
    return [shape[shape.length - 2] * receptive, shape[shape.length - 1] * receptive];
  }
  return [shape[0], shape[1]];
}

export class Net {
  /** Trainable weights: the optimizer updates these. */
  readonly params: Param[];
  /** Non-trainable weights (batch-norm moving statistics): saved and restored like params, never given to the optimizer. */
  readonly state: Param[];
  /** The structural fingerprint (version 2, model-fingerprint.ts); legacyFingerprint() gives version 1's. */
  readonly fingerprint: string;
  readonly legacyFingerprint: () => string;
  readonly parameterCount: number;
  /** Keras weight regularizers of a model file: l1 * sum(|w|) + l2 * sum(w^2) each, added to the training loss. */
  penalties: Array<{ param: Param; l1: number; l2: number }> = [];
  /** Keras weight constraints of a model file, applied to their weights after every update (penalties.ts). */
  constraints: Array<Omit<WeightConstraint, 'weight'> & { param: Param }> = [];
  /** Set when the weights came with the model (a model.json with weights): initialize() is then not called. */
  pretrained = false;
  /** The gradient math of training forward passes (see numerics.ts); the trainer sets it. */
  numerics: NumericsVersion = 1;
  /**
   * Task binary: a sigmoid on the output layer is left to the loss, as softmax is for classification, so forward()
   * gives logits (the loss is then computed from them, stably, as Keras does for a sigmoid output).
   */
  sigmoidLogits = false;
  private readonly byLayer = new Map<string, Partial<Record<ParamRole, tf.Variable>>>();
  private readonly kindOfParam = new Map<Param, LayerKind>();
  private readonly graph: Graph;
  /** Per node: whether its output is read by one max pooling layer and nothing else (see layers/ops.ts ReluMask). */
  private readonly pooledOnly: boolean[];
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
    const stable = fingerprints.stableLayerNames(model);
    for (const layer of model.layers) {
      const cls = layer.getClassName();
      if (!SUPPORTED_CLASSES.has(cls) && cls !== 'InputLayer')
        throw new Error(`models: unsupported layer ${cls} (${layer.name})`);
      const kind = KINDS_BY_CLASS.get(cls);
      const trainable = new Set(layer.trainableWeights.map((w) => w.originalName));
      const vars: Partial<Record<ParamRole, tf.Variable>> = {};
      for (const lv of layer.weights) {
        const role = kind?.roles.find((r) => lv.originalName.endsWith(`/${r}`));
        if (!role) throw new Error(`models: layer ${layer.name} has an unexpected weight ${lv.originalName}`);
        const variable = lv.read() as tf.Variable;
        const shape = variable.shape.slice();
        const [fanIn, fanOut] = fans(role, shape);
        vars[role] = variable;
        const [sn, legacyName] = [`model/${stable.get(layer.name)}/${role}`, `model/${layer.name}/${role}`];
        const p: Param = { name: sn, legacyName, shape, variable, role, fanIn, fanOut };
        (trainable.has(lv.originalName) ? this.params : this.state).push(p);
        if (kind) this.kindOfParam.set(p, kind);
      }
      this.byLayer.set(layer.name, vars);
    }
    this.graph = graphOf(model);
    this.pooledOnly = readByMaxPoolOnly(this.graph);
    const names = this.all.map((p) => p.name);
    if (new Set(names).size !== names.length) throw new Error(`models: duplicate weight names in ${name}`);
    this.fingerprint = fingerprints.structuralFingerprint(name, model, this.all, topology);
    const legacy = this.all.map((p) => ({ name: p.legacyName!, shape: p.shape }));
    this.legacyFingerprint = () => fingerprints.legacyFingerprint(name, legacy, topology);
    this.parameterCount = this.params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  }

  /** Every weight of the model, trainable or not, in model order. */
  get all(): Param[] {
    return [...this.params, ...this.state];
  }

  /**
   * Initial values drawn in JS from our PRNG, identical on every backend: Glorot-uniform kernels, uniform(-0.05, 0.05)
   * embeddings (the Keras default), orthogonal recurrent kernels (as Keras), zero biases and betas, unit gammas;
   * moving statistics start at mean 0, variance 1. A layer kind may give a weight other values (LSTM's forget bias).
   */
  initialize(rng: Prng): void {
    for (const p of this.all) {
      const values = this.kindOfParam.get(p)?.initialize?.(p.role, p.shape, rng) ?? initialValues(p, rng);
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
    if (dropoutMask) freePendingWorkspaces();
    const { nodes, output } = this.graph;
    const outs: tf.Tensor[] = [];
    // A node's output depends on weights (so its gradient is used) once any layer with weights has run before it;
    // until then it depends only on data and the layers reading it skip their input's gradient.
    const onWeights: boolean[] = [];
    for (let i = 0; i < nodes.length; i++) {
      const { layer, kind, inputs } = nodes[i];
      const ctx: ForwardContext = {
        numerics: this.numerics,
        dropoutMask,
        updates,
        isLast: i === output,
        inputGrad: inputs.some((j) => j !== MODEL_INPUT && onWeights[j]),
        readByMaxPoolOnly: !!dropoutMask && this.pooledOnly[i],
      };
      const ins = inputs.map((j) => (j === MODEL_INPUT ? x : outs[j]));
      let cfg = layer.getConfig() as Record<string, unknown>;
      if (ctx.isLast && this.sigmoidLogits && cfg.activation === 'sigmoid') cfg = { ...cfg, activation: 'linear' };
      outs.push(kind.forward(ins, this.byLayer.get(layer.name) ?? {}, cfg, ctx));
      onWeights.push(ctx.inputGrad || kind.roles.length > 0);
    }
    const h = outs[output];
    if (h.rank !== 2) throw new Error(`models: output shape ${JSON.stringify(h.shape)}: expected [batch, units]`);
    return h as tf.Tensor2D;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
  }
}

/** Per node of `graph`: whether its output is read by exactly one max pooling layer and nothing else (not the output). */
function readByMaxPoolOnly({ nodes, output }: Graph): boolean[] {
  const readers = nodes.map(() => [] as number[]);
  nodes.forEach(({ inputs }, j) => inputs.forEach((i) => i !== MODEL_INPUT && readers[i].push(j)));
  return readers.map((r, i) => i !== output && r.length === 1 && nodes[r[0]].kind === maxPooling2d);
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
  let model: tf.LayersModel;
  try {
    if (isLayerGraph(layers)) model = buildLayerGraph(layers, built, inputShape);
    else {
      try {
        model = tf.sequential({ layers: built });
      } catch (err) {
        throw new ConfigError(`model: the layers do not fit together: ${(err as Error).message}`);
      }
    }
  } catch (err) {
    // The layers that were built before the refusal hold variables: a worker refusing models must not keep them.
    for (const layer of built) for (const w of layer.weights) w.dispose();
    throw err;
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
  const net = await buildNetOf(spec, inputShape, outputs, topology);
  net.sigmoidLogits = spec.task === 'binary';
  return net;
}

async function buildNetOf(spec: RunSpec, inputShape: number[], outputs: number, topology?: unknown): Promise<Net> {
  if (typeof spec.model === 'object' && 'registered' in spec.model && topology) {
    const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
    return new Net(spec.model.registered, 0, model, { registered: spec.model.registered, topology });
  }
  if (typeof spec.model === 'object' && 'tfjs' in spec.model) {
    const loaded = await loadTfjsModel(spec.model.tfjs, process.cwd(), storeRoots(spec, process.cwd()));
    const net = new Net('tfjs', 0, loaded.model, { tfjs: loaded.topology });
    net.pretrained = loaded.pretrained;
    // None found: a bias the layer does not use.
    const paramOf = (weight: string) => net.all.find((q) => q.legacyName === `model/${weight}`);
    net.penalties = loaded.penalties.flatMap((p) => {
      const param = paramOf(p.weight);
      return param ? [{ ...p, param }] : [];
    });
    // Keras constrains only the trainable weights an update changed: none of a layer with trainable false.
    net.constraints = loaded.constraints.flatMap((c) => {
      const param = net.params.find((q) => q.legacyName === `model/${c.weight}`);
      if (!param) return [];
      const bad = (c.axis ?? []).find((a) => !(a >= -param.shape.length && a < param.shape.length));
      if (bad !== undefined)
        throw new ConfigError(
          `model: layer ${c.weight.split('/')[0]}: ${c.kind} constraint axis ${bad} is outside its ${c.weight} of shape ${JSON.stringify(param.shape)}`,
        );
      return [{ ...c, param }];
    });
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
