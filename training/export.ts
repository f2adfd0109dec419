// Export of a checkpoint as a standard TF.js Layers model (model.json + weights.bin, what
// tf.loadLayersModel reads), and optionally its optimizer slots under our stable names.
// Bytes in, bytes out: the caller reads the checkpoint and writes the files.
import { createHash } from 'crypto';
import { endianness } from 'os';
import * as tf from '@tensorflow/tfjs';
import './tfjs-quiet';
import type { RunSpec } from '../spec/types';
import { modelLabel } from '../spec/labels';
import { buildNet, type Net } from './models';
import type { NamedTensorBytes } from './trainer';
import { PREPROCESSING_JSON, type Preprocessing } from './preprocess';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
export const OPTIMIZER_JSON = 'optimizer.json';
export const OPTIMIZER_BIN = 'optimizer.bin';
export const OPTIMIZER_FORMAT = 'durable-train-optimizer';

export interface ExportFile {
  name: string;
  data: Uint8Array;
}

export interface ExportedModel {
  /** model.json and weights.bin, then optimizer.json and optimizer.bin when asked for. */
  files: ExportFile[];
  /** The weights as the saved model names them (tfjs layer/weight names). */
  weights: Array<{ name: string; shape: number[]; dtype: string }>;
  /** sha256 over the model weights, names sorted, float32 little-endian: the run result's weightsSha256. */
  weightsSha256: string;
  modelFingerprint: string;
  parameterCount: number;
  optimizer: { name: string; iterations: number; tensors: string[] } | null;
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** An aligned copy (checkpoint bytes may sit at any offset in a larger buffer). */
function alignedCopy(data: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  return copy.buffer;
}

const elements = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * The tf.layers model of `spec` with the `model/*` tensors of a checkpoint assigned by their stable names.
 * Throws naming any missing, mismatched or unexpected model tensor. The caller disposes the Net.
 */
export async function restoreNet(
  spec: RunSpec,
  tensors: NamedTensorBytes[],
  featureShape?: number[],
  topology?: unknown,
  outputs = 10,
): Promise<Net> {
  if (endianness() !== 'LE') throw new Error('export: checkpoints are little-endian; this host is big-endian');
  const net = await buildNet(spec, featureShape ?? [28, 28, 1], outputs, topology);
  try {
    const given = new Map(tensors.filter((t) => t.name.startsWith('model/')).map((t) => [t.name, t]));
    for (const p of net.all) {
      const t = given.get(p.name) ?? given.get(p.legacyName ?? p.name);
      if (!t) throw new Error(`checkpoint has no tensor ${p.name} (is it a ${modelLabel(spec.model)} checkpoint?)`);
      given.delete(t.name);
      if (t.dtype !== 'float32' || !sameShape(t.shape, p.shape))
        throw new Error(
          `tensor ${p.name} is ${t.dtype} ${JSON.stringify(t.shape)}, ${modelLabel(spec.model)} expects float32 ${JSON.stringify(p.shape)}`,
        );
      if (t.data.byteLength !== 4 * elements(p.shape))
        throw new Error(`tensor ${p.name} has ${t.data.byteLength} bytes, expected ${4 * elements(p.shape)}`);
      const values = new Float32Array(alignedCopy(t.data));
      tf.tidy(() => p.variable.assign(tf.tensor(values, p.shape, 'float32')));
    }
    if (given.size > 0)
      throw new Error(
        `checkpoint has model tensor(s) ${modelLabel(spec.model)} does not: ${[...given.keys()].join(', ')}`,
      );
    return net;
  } catch (err) {
    net.dispose();
    throw err;
  }
}

/** The same digest as Trainer.weightsSha256, from the restored variables. */
function weightsSha256(net: Net): string {
  const h = createHash('sha256');
  for (const p of [...net.params].sort(byName)) {
    const v = p.variable.dataSync() as Float32Array;
    h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  return h.digest('hex');
}

const json = (v: unknown) => new Uint8Array(Buffer.from(JSON.stringify(v, null, 2) + '\n', 'utf8'));

/** model.json + weights.bin through model.save with an in-memory save handler: tfjs names and encodes the weights. */
async function saveLayers(net: Net, metadata: Record<string, unknown>): Promise<ExportFile[]> {
  let captured: tf.io.ModelArtifacts | null = null;
  net.model.setUserDefinedMetadata({ durableTrain: metadata });
  await net.model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  const a = captured as tf.io.ModelArtifacts | null;
  if (!a || !a.modelTopology || !a.weightSpecs || a.weightData === undefined)
    throw new Error('export: model.save produced no topology or weights');
  const modelJson: tf.io.ModelJSON = {
    modelTopology: a.modelTopology as tf.io.ModelJSON['modelTopology'],
    format: a.format,
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy ?? null,
    weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: a.weightSpecs }],
    userDefinedMetadata: a.userDefinedMetadata,
  };
  const weightData = new Uint8Array(tf.io.CompositeArrayBuffer.join(a.weightData));
  return [
    { name: MODEL_JSON, data: json(modelJson) },
    { name: WEIGHTS_BIN, data: weightData },
  ];
}

type LayerJson = {
  class_name: string;
  config: Record<string, unknown>;
  /** A functional model's layer: its name and the outputs it is called on ([[[layer, node, tensor, kwargs]]]). */
  name?: string;
  inbound_nodes?: unknown[][][];
};

/** The frozen Dense layer `name` that computes (x - mean) / std over `n` features. */
function standardizeLayer(name: string, n: number): LayerJson {
  return {
    class_name: 'Dense',
    config: {
      name,
      trainable: false,
      dtype: 'float32',
      units: n,
      activation: 'linear',
      use_bias: true,
      kernel_initializer: { class_name: 'Zeros', config: {} },
      bias_initializer: { class_name: 'Zeros', config: {} },
      kernel_regularizer: null,
      bias_regularizer: null,
      activity_regularizer: null,
      kernel_constraint: null,
      bias_constraint: null,
    },
  };
}

/** Inserts the standardize layer into a sequential model's layer list, after its InputLayer if it has one. */
function insertSequential(layers: LayerJson[], std: LayerJson, n: number): void {
  const at = layers[0].class_name === 'InputLayer' ? 1 : 0;
  if (at === 0) {
    // The input shape moves to the new first layer.
    std.config.batch_input_shape = layers[0].config.batch_input_shape ?? [null, n];
    delete layers[0].config.batch_input_shape;
    delete layers[0].config.input_shape;
  }
  layers.splice(at, 0, std);
}

/**
 * Inserts the standardize layer into a functional model's graph: called on its one InputLayer, and every layer that
 * was called on the input is called on the standardized rows instead.
 */
function insertFunctional(layers: LayerJson[], std: LayerJson): void {
  const inputs = layers.filter((l) => l.class_name === 'InputLayer');
  if (inputs.length !== 1)
    throw new Error(`--bake-preprocessing: the model has ${inputs.length} inputs; only models with one input bake`);
  const input = String(inputs[0].name ?? inputs[0].config.name);
  const name = String(std.config.name);
  for (const l of layers)
    for (const node of l.inbound_nodes ?? [])
      for (const call of node) if (Array.isArray(call) && call[0] === input) call[0] = name;
  layers.splice(layers.indexOf(inputs[0]) + 1, 0, { ...std, name, inbound_nodes: [[[input, 0, 0, {}]]] });
}

/**
 * Puts the standardisation in front of a model.json (sequential or functional): a frozen Dense layer named
 * `standardize` with a diagonal kernel 1/std and bias -mean/std (x/std - mean/std = (x - mean)/std, up to float
 * rounding), a layer every Layers loader knows (tfjs, Keras). Rewrites model.json and weights.bin in `files`; returns
 * the preprocessing with `baked: true` (inputs are raw rows).
 */
function bakeStandardization(files: ExportFile[], p: Preprocessing): Preprocessing {
  if (p.featureShape.length !== 1)
    throw new Error(
      `--bake-preprocessing: features of shape ${JSON.stringify(p.featureShape)}; only rows of features (rank 1) bake`,
    );
  const n = p.featureShape[0];
  const baked: Preprocessing = { ...p, baked: true };
  if (!p.standardization) return baked; // nothing to apply: inputs are used as read
  const modelFile = files.find((f) => f.name === MODEL_JSON)!;
  const weightsFile = files.find((f) => f.name === WEIGHTS_BIN)!;
  const model = JSON.parse(Buffer.from(modelFile.data).toString('utf8')) as tf.io.ModelJSON & {
    modelTopology: { class_name?: string; config?: { layers?: LayerJson[] } };
  };
  const topo = model.modelTopology;
  const layers = topo.config?.layers;
  const functional = topo.class_name === 'Model' || topo.class_name === 'Functional';
  if ((topo.class_name !== 'Sequential' && !functional) || !Array.isArray(layers) || layers.length === 0)
    throw new Error(
      `--bake-preprocessing: the model is a ${topo.class_name}; only sequential and functional models bake`,
    );
  const names = new Set(layers.map((l) => String(l.name ?? l.config.name)));
  let name = 'standardize';
  for (let i = 2; names.has(name); i++) name = `standardize_${i}`;
  const std = standardizeLayer(name, n);
  if (functional) insertFunctional(layers, std);
  else insertSequential(layers, std, n);
  const kernel = new Float32Array(n * n);
  const bias = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    kernel[j * n + j] = 1 / p.standardization.std[j];
    bias[j] = -p.standardization.mean[j] / p.standardization.std[j];
  }
  const group = model.weightsManifest[0];
  group.weights = [
    { name: `${name}/kernel`, shape: [n, n], dtype: 'float32' },
    { name: `${name}/bias`, shape: [n], dtype: 'float32' },
    ...group.weights,
  ];
  const data = new Uint8Array(kernel.byteLength + bias.byteLength + weightsFile.data.byteLength);
  data.set(new Uint8Array(kernel.buffer), 0);
  data.set(new Uint8Array(bias.buffer), kernel.byteLength);
  data.set(weightsFile.data, kernel.byteLength + bias.byteLength);
  weightsFile.data = data;
  modelFile.data = json(model);
  return baked;
}

/**
 * optimizer.json (a tfjs-style weights manifest of the `opt/*` tensors under our stable names, e.g.
 * opt/adam/m/model/dense1/kernel, plus the optimizer config and step) and optimizer.bin (their bytes,
 * concatenated in manifest order; tf.io.decodeWeights reads them).
 */
function optimizerFiles(
  spec: RunSpec,
  tensors: NamedTensorBytes[],
  metadata: Record<string, unknown>,
): { files: ExportFile[]; info: NonNullable<ExportedModel['optimizer']> } {
  const slots = tensors.filter((t) => t.name.startsWith('opt/'));
  const prefix = `opt/${spec.optimizer.name}/`;
  const iterationsName = `${prefix}iterations`;
  const iterations = slots.find((t) => t.name === iterationsName);
  if (!iterations || iterations.dtype !== 'int32' || iterations.data.byteLength !== 4)
    throw new Error(`checkpoint has no int32 scalar ${iterationsName} (optimizer ${spec.optimizer.name})`);
  const weights: Array<{ name: string; shape: number[]; dtype: 'float32' | 'int32' }> = [];
  const parts: Uint8Array[] = [];
  for (const t of slots) {
    if (!t.name.startsWith(prefix))
      throw new Error(`checkpoint tensor ${t.name} is not a slot of ${spec.optimizer.name}`);
    if (t.dtype !== 'float32' && t.dtype !== 'int32')
      throw new Error(`optimizer tensor ${t.name} has dtype ${t.dtype}`);
    if (t.data.byteLength !== 4 * elements(t.shape))
      throw new Error(`optimizer tensor ${t.name} has ${t.data.byteLength} bytes for shape ${JSON.stringify(t.shape)}`);
    weights.push({ name: t.name, shape: t.shape.slice(), dtype: t.dtype });
    parts.push(t.data);
  }
  const bin = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    bin.set(p, offset);
    offset += p.byteLength;
  }
  const iterationCount = new Int32Array(alignedCopy(iterations.data))[0];
  const manifest = {
    format: OPTIMIZER_FORMAT,
    formatVersion: 1,
    optimizer: spec.optimizer,
    iterations: iterationCount,
    ...metadata,
    weightsManifest: [{ paths: [`./${OPTIMIZER_BIN}`], weights }],
  };
  return {
    files: [
      { name: OPTIMIZER_JSON, data: json(manifest) },
      { name: OPTIMIZER_BIN, data: bin },
    ],
    info: { name: spec.optimizer.name, iterations: iterationCount, tensors: weights.map((w) => w.name) },
  };
}

/**
 * Restores the checkpoint's model weights into the spec's tf.layers model and serializes it in the
 * standard Layers format; `metadata` lands in model.json's userDefinedMetadata.durableTrain.
 */
export async function exportModel(
  spec: RunSpec,
  tensors: NamedTensorBytes[],
  opts: {
    includeOptimizer?: boolean;
    metadata?: Record<string, unknown>;
    featureShape?: number[];
    /** A registered model's topology from its checkpoint. */
    modelTopology?: unknown;
    /** The checkpoint's fingerprint version (model-fingerprint.ts); default: the current one. */
    fingerprintVersion?: 1 | 2;
    /** Written beside model.json as preprocessing.json. */
    preprocessing?: Preprocessing;
    /** Also put the standardisation in front of the model as a Dense layer, so it takes raw rows. */
    bakePreprocessing?: boolean;
  } = {},
): Promise<ExportedModel> {
  await tf.ready();
  const metadata = opts.metadata ?? {};
  const net = await restoreNet(spec, tensors, opts.featureShape, opts.modelTopology);
  try {
    const files = await saveLayers(net, metadata);
    if (opts.preprocessing) {
      const p = opts.bakePreprocessing ? bakeStandardization(files, opts.preprocessing) : opts.preprocessing;
      files.push({ name: PREPROCESSING_JSON, data: json(p) });
    } else if (opts.bakePreprocessing) throw new Error('--bake-preprocessing: the checkpoint records no preprocessing');
    const modelJson = JSON.parse(Buffer.from(files[0].data).toString('utf8')) as tf.io.ModelJSON;
    const weights = modelJson.weightsManifest[0].weights.map((w) => ({
      name: w.name,
      shape: w.shape.slice(),
      dtype: w.dtype,
    }));
    let optimizer: ExportedModel['optimizer'] = null;
    if (opts.includeOptimizer) {
      const o = optimizerFiles(spec, tensors, metadata);
      files.push(...o.files);
      optimizer = o.info;
    }
    return {
      files,
      weights,
      weightsSha256: weightsSha256(net),
      modelFingerprint: opts.fingerprintVersion === 1 ? net.legacyFingerprint() : net.fingerprint,
      parameterCount: net.parameterCount,
      optimizer,
    };
  } finally {
    net.dispose();
  }
}
