// A TF.js Layers model as `model.save()` or tfjs-converter writes it (model.json with a Keras-format topology, plus
// weight files): its layers become the run's model, and its weights, when the file has them, the starting point.
// Every layer must be one of the supported kinds, with options our training loop implements; anything else is
// refused naming the layer, its index and what is supported.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { LAYER_KINDS, SPEC_KINDS } from '../spec/layers';
import { CheckpointNotFoundError, openObject, StorageUrlError } from '../storage';
import { parseStorageUrl } from '../storage/url';
import { checkDataRoot, dataRoots } from './data/roots';
import { ConfigError } from './errors';
import {
  KerasTopologyError,
  normalizeKerasTopology,
  weightKeyMap,
  type WeightConstraint,
  type WeightPenalty,
} from './keras-topology';

interface Artifacts {
  topology: { class_name?: string; config?: unknown };
  weightSpecs: tf.io.WeightsManifestEntry[];
  weightData: ArrayBuffer | null;
}

const SUPPORTED = new Map(Object.entries(LAYER_KINDS).map(([type, k]) => [k.className, type]));

const fail = (url: string, message: string) => new ConfigError(`model.tfjs: ${url}: ${message}`);

type ModelJson = {
  format?: string;
  modelTopology?: Artifacts['topology'];
  weightsManifest?: tf.io.WeightsManifestConfig;
};

/** Where model.json and its weight files come from: a directory (file://) or an object store (s3://, gs://, az://). */
interface ModelSource {
  /** model.json's bytes. */
  readJson(): Promise<Buffer>;
  /** A weight file named by its path relative to model.json (checked to stay in model.json's directory). */
  readWeights(relative: string): Promise<Buffer>;
}

function fileSource(url: string, file: string, roots: string[]): ModelSource {
  return {
    async readJson() {
      await checkDataRoot(file, roots, 'model.tfjs', url);
      const st = await fsp.stat(file).catch(() => null);
      if (!st?.isFile()) throw fail(url, `no such file ${file}`);
      return fsp.readFile(file);
    },
    async readWeights(p) {
      const wf = path.resolve(path.dirname(file), p);
      if (path.relative(path.dirname(file), wf).startsWith('..'))
        throw fail(url, `weight file ${p} is outside the model's directory`);
      await checkDataRoot(wf, roots, 'model.tfjs', `${url}: weight file ${p}`);
      return fsp.readFile(wf).catch(() => Promise.reject(fail(url, `weight file ${p} is missing`)));
    },
  };
}

/**
 * model.json in an object store: weight files are the objects beside it (model.json's URL up to its last `/`, plus
 * the relative path). A missing object is a ConfigError naming it; an unreachable store stays a storage error
 * (retried like any other outage).
 */
function objectSource(url: string, baseDir: string): ModelSource {
  const read = async (objectUrl: string, what: string) => {
    try {
      return Buffer.from(await openObject(objectUrl, baseDir).read());
    } catch (err) {
      if (err instanceof CheckpointNotFoundError) throw fail(url, `${what} is missing (${objectUrl})`);
      if (err instanceof StorageUrlError) throw fail(url, err.message);
      throw err;
    }
  };
  const dir = url.slice(0, url.lastIndexOf('/') + 1);
  return {
    readJson: () => read(url, 'model.json'),
    readWeights(p) {
      const parts = p.split('/');
      if (p.startsWith('/') || parts.some((s) => s === '..' || s === '.' || s === '') || /[?#]/.test(p))
        throw fail(url, `weight file ${p} is outside the model's directory`);
      return read(dir + p, `weight file ${p}`);
    },
  };
}

/**
 * Reads model.json and its weight files (file:// URLs, relative paths against baseDir; or s3://, gs://, az:// objects).
 * Read every time, never cached on a size or a timestamp: a weights file replaced by one of the same size and time
 * must give the new weights.
 */
async function readArtifacts(url: string, baseDir: string, extraRoots: string[]): Promise<Artifacts> {
  let loc;
  try {
    loc = parseStorageUrl(url);
  } catch (err) {
    throw fail(url, (err as Error).message);
  }
  const source =
    loc.kind === 'file'
      ? fileSource(url, path.resolve(baseDir, loc.path), dataRoots([baseDir, ...extraRoots]))
      : objectSource(url, baseDir);
  let json: ModelJson;
  try {
    json = JSON.parse((await source.readJson()).toString('utf8'));
  } catch (err) {
    if ((err as Error).name === 'ConfigError' || !(err instanceof SyntaxError)) throw err;
    throw fail(url, `not a JSON file: ${err.message}`);
  }
  if (!json || typeof json !== 'object' || !json.modelTopology)
    throw fail(url, 'has no modelTopology (expected a TF.js Layers model.json, format "layers-model")');
  if (json.format !== undefined && json.format !== 'layers-model')
    throw fail(url, `is a ${JSON.stringify(json.format)} model; only Layers models ("layers-model") can be trained`);
  const groups = json.weightsManifest ?? [];
  const weightSpecs = groups.flatMap((g) => g.weights);
  let weightData: ArrayBuffer | null = null;
  if (weightSpecs.length) {
    const parts: Buffer[] = [];
    for (const g of groups) for (const p of g.paths) parts.push(await source.readWeights(p));
    const all = Buffer.concat(parts);
    const expected = weightBytes(weightSpecs);
    if (expected !== null && all.byteLength !== expected)
      throw fail(
        url,
        `its weight files hold ${all.byteLength} bytes, its weights manifest describes ${expected}: ` +
          'a weight file is truncated or has extra bytes',
      );
    weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  }
  return { topology: json.modelTopology, weightSpecs, weightData };
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/** The bytes a weights manifest describes, or null when it has a kind whose size is not fixed (strings). */
function weightBytes(specs: tf.io.WeightsManifestEntry[]): number | null {
  let total = 0;
  for (const w of specs) {
    const size = DTYPE_BYTES[w.quantization?.dtype ?? w.dtype];
    if (size === undefined) return null;
    total += w.shape.reduce((a, b) => a * b, 1) * size;
  }
  return total;
}

/** Refuses layers and options the training loop does not implement, naming the layer and its index. */
function checkLayers(url: string, model: tf.LayersModel): void {
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  const supported = [...SUPPORTED.keys()].join(', ');
  for (const [i, layer] of layers.entries()) {
    const cls = layer.getClassName();
    const where = `layer ${layer.name} (index ${i}, ${cls})`;
    if (!SUPPORTED.has(cls)) throw fail(url, `${where} is not supported (supported: ${supported})`);
    const cfg = layer.getConfig() as Record<string, unknown>;
    for (const k of [
      'kernelRegularizer',
      'biasRegularizer',
      'activityRegularizer',
      'kernelConstraint',
      'biasConstraint',
      'embeddingsRegularizer',
      'embeddingsConstraint',
      'gammaRegularizer',
      'betaRegularizer',
      'depthwiseRegularizer',
      'pointwiseRegularizer',
      'depthwiseConstraint',
      'pointwiseConstraint',
      'noiseShape',
    ]) {
      if (cfg[k] !== undefined && cfg[k] !== null) throw fail(url, `${where}: option ${k} is not supported`);
    }
    const problem = SPEC_KINDS[SUPPORTED.get(cls)!].checkConfig?.(cfg);
    if (problem) throw fail(url, `${where}: ${problem[0]}: ${problem[1]}`);
    if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast')
      throw fail(url, `${where}: dataFormat ${String(cfg.dataFormat)} is not supported (channelsLast only)`);
    if (cls === 'BatchNormalization') {
      const rank = (layer.inputSpec?.[0]?.ndim ?? (layer.input as tf.SymbolicTensor).shape.length) as number;
      if (cfg.axis !== -1 && cfg.axis !== rank - 1) throw fail(url, `${where}: only the last axis is supported`);
    }
  }
}

/**
 * The model a model.json describes, with its weights when the file has them (`pretrained`); `topology` identifies it
 * for the model fingerprint. Throws ConfigError naming what does not fit.
 */
export async function loadTfjsModel(
  url: string,
  baseDir: string = process.cwd(),
  /** Directories besides baseDir it may be read from when DURABLE_TRAIN_DATA_ROOTS is unset (the checkpoint store). */
  extraRoots: string[] = [],
): Promise<{
  model: tf.LayersModel;
  pretrained: boolean;
  topology: unknown;
  penalties: WeightPenalty[];
  constraints: WeightConstraint[];
}> {
  const a = await readArtifacts(url, baseDir, extraRoots);
  let normalized: ReturnType<typeof normalizeKerasTopology>;
  try {
    normalized = normalizeKerasTopology(a.topology);
  } catch (err) {
    if (err instanceof KerasTopologyError) throw fail(url, err.message);
    throw err;
  }
  let model: tf.LayersModel;
  try {
    model = await tf.models.modelFromJSON({ modelTopology: normalized.topology } as unknown as tf.io.ModelJSON);
  } catch (err) {
    throw fail(url, `its topology cannot be built: ${(err as Error).message}`);
  }
  try {
    checkLayers(url, model);
    if (a.weightData) {
      let weights: tf.NamedTensorMap;
      try {
        const keys = weightKeyMap(
          model,
          a.weightSpecs.map((w) => w.name),
        );
        const decoded = tf.io.decodeWeights(a.weightData, a.weightSpecs);
        weights = Object.fromEntries(Object.entries(decoded).map(([k, t]) => [keys.get(k) ?? k, t]));
      } catch (err) {
        throw fail(url, `its weight files do not match its weights manifest: ${(err as Error).message}`);
      }
      try {
        model.loadWeights(weights, true);
      } catch (err) {
        throw fail(url, `its weights do not match its topology: ${(err as Error).message}`);
      } finally {
        tf.dispose(Object.values(weights));
      }
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  return {
    model,
    pretrained: a.weightData !== null,
    topology: a.topology,
    penalties: normalized.penalties,
    constraints: normalized.constraints,
  };
}
