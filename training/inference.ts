// Predictions on raw rows: read them (csv or jsonl, columns checked by name against the recorded feature names),
// standardise them as the training data was, run the model, and name the classes. The model is either the
// checkpoint's (our forward pass, as evaluation runs it) or an export's tf.layers model (plain @tensorflow/tfjs).
import { DurableTrainError } from '../spec/errors';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import './tfjs-quiet';
import { scanCsv } from './data/csv';
import { parseDecimal } from './data/table';
import type { Net } from './models';
import { checkPreprocessing, PREPROCESSING_JSON, standardize, type Preprocessing } from './preprocess';

const BATCH = 250;

/** A row as a caller gives it: feature name -> number (jsonl array fields as `field: [..]` or `field[i]`). */
export type RawRow = Record<string, unknown>;

export interface Prediction {
  /** Classification: the most probable class's name and every class's probability, in `classes` order. */
  class?: string;
  probabilities?: number[];
  /** Regression: the predicted value. */
  value?: number;
}

/** Bad rows for prediction: the message names the column, field or line. */
export class InputError extends DurableTrainError {
  readonly code = 'invalid' as const;

  override readonly name = 'InputError';
}

/** Model outputs [n, units] for standardised features (n rows of featureSize). */
type Forward = (x: Float32Array, n: number) => Float32Array;

export class InferenceModel {
  constructor(
    readonly preprocessing: Preprocessing,
    private readonly forward: Forward,
    /** Whether `forward` gives probabilities already (an exported softmax layer) rather than logits. */
    private readonly givesProbabilities: boolean,
    private readonly release: () => void,
  ) {}

  get featureSize(): number {
    return this.preprocessing.featureShape.reduce((a, b) => a * b, 1);
  }

  /** Predictions for raw feature rows (n * featureSize values, unstandardised). */
  predictFeatures(raw: Float32Array, n: number): Prediction[] {
    const p = this.preprocessing;
    const size = this.featureSize;
    if (raw.length !== n * size) throw new InputError(`expected ${n * size} values for ${n} rows, got ${raw.length}`);
    const x = raw.slice();
    if (!p.baked) standardize(x, p);
    const out: Prediction[] = [];
    for (let start = 0; start < n; start += BATCH) {
      const count = Math.min(BATCH, n - start);
      const y = this.forward(x.subarray(start * size, (start + count) * size), count);
      const units = y.length / count;
      for (let k = 0; k < count; k++) {
        const row = y.subarray(k * units, (k + 1) * units);
        if (p.task === 'regression') {
          out.push({ value: row[0] });
          continue;
        }
        if (p.task === 'binary') {
          // Our forward pass gives the logit; an exported model ends in its sigmoid.
          const p1 = this.givesProbabilities ? row[0] : 1 / (1 + Math.exp(-row[0]));
          out.push({ class: p1 > 0.5 ? '1' : '0', probabilities: [1 - p1, p1] });
          continue;
        }
        const probs = this.givesProbabilities ? Array.from(row) : softmax(row);
        let best = 0;
        for (let c = 1; c < probs.length; c++) if (probs[c] > probs[best]) best = c;
        out.push({ class: p.classes![best], probabilities: probs });
      }
    }
    return out;
  }

  /** Predictions for rows given as objects keyed by feature name (columns checked by name). */
  predict(rows: RawRow[]): Prediction[] {
    const { x, n } = rowsToFeatures(rows, this.preprocessing, 'row');
    return this.predictFeatures(x, n);
  }

  /** Predictions for a csv or jsonl file of raw rows (by extension; `format` overrides). */
  async predictFile(file: string, format?: 'csv' | 'jsonl'): Promise<Prediction[]> {
    const bytes = new Uint8Array(await fsp.readFile(file));
    const { x, n } = readRows(bytes, format ?? formatOf(file), file, this.preprocessing);
    return this.predictFeatures(x, n);
  }

  dispose(): void {
    this.release();
  }
}

function softmax(logits: Float32Array): number[] {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const e = Array.from(logits, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** The run's model as its evaluation runs it: our forward pass on the checkpoint's weights (logits). */
export function inferenceFromNet(net: Net, p: Preprocessing): InferenceModel {
  const forward: Forward = (x, n) =>
    tf.tidy(() => net.forward(tf.tensor(x, [n, ...p.featureShape], 'float32')).dataSync() as Float32Array);
  return new InferenceModel({ ...p, baked: false }, forward, false, () => net.dispose());
}

/** An exported tf.layers model (model.predict). */
export function inferenceFromLayersModel(model: tf.LayersModel, p: Preprocessing): InferenceModel {
  const last = model.layers[model.layers.length - 1];
  const activation = (last.getConfig() as { activation?: unknown }).activation;
  const probabilities = p.task === 'binary' ? activation === 'sigmoid' : activation === 'softmax';
  const inShape = model.inputs[0].shape.slice(1) as number[];
  const forward: Forward = (x, n) =>
    tf.tidy(() => (model.predict(tf.tensor(x, [n, ...inShape], 'float32')) as tf.Tensor).dataSync() as Float32Array);
  return new InferenceModel(p, forward, p.task !== 'regression' && probabilities, () => model.dispose());
}

/**
 * An export directory (`durable-train export`): model.json, weights.bin and preprocessing.json, loaded with plain
 * @tensorflow/tfjs from memory (tf.loadLayersModel('file://...') needs tfjs-node's file handler).
 */
export async function inferenceFromExport(dir: string): Promise<InferenceModel> {
  const base = dir.endsWith('.json') ? path.dirname(dir) : dir;
  const modelJson = JSON.parse(await fsp.readFile(path.join(base, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const weightSpecs = modelJson.weightsManifest.flatMap((g) => g.weights);
  const parts = await Promise.all(
    modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => fsp.readFile(path.join(base, p))),
  );
  const weightData = new Uint8Array(Buffer.concat(parts)).buffer;
  let pre: Preprocessing;
  const file = path.join(base, PREPROCESSING_JSON);
  try {
    pre = checkPreprocessing(JSON.parse(await fsp.readFile(file, 'utf8')), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new InputError(`${base} has no ${PREPROCESSING_JSON}: export it again with this version`);
    throw err;
  }
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs, weightData }),
  );
  return inferenceFromLayersModel(model, pre);
}

function formatOf(file: string): 'csv' | 'jsonl' {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new InputError(`${file}: the input must be a .csv or .jsonl file`);
}

/** The feature names rows must have, or an error for data without names (images). */
function namesOf(p: Preprocessing): string[] {
  if (!p.featureNames)
    throw new InputError('this model was trained on data without feature names (images); predict takes named columns');
  return p.featureNames;
}

/** Missing and extra columns of a row or header, as one message; the label column may be present (ignored). */
function columnProblem(have: string[], p: Preprocessing, kind: string): string | null {
  const names = namesOf(p);
  const missing = names.filter((f) => !have.includes(f));
  const extra = have.filter((c) => !names.includes(c) && c !== p.label);
  if (!missing.length && !extra.length) return null;
  return [
    missing.length
      ? `no ${kind}${missing.length > 1 ? 's' : ''} ${missing.map((m) => JSON.stringify(m)).join(', ')}`
      : '',
    extra.length
      ? `unknown ${kind}${extra.length > 1 ? 's' : ''} ${extra.map((m) => JSON.stringify(m)).join(', ')} ` +
        `(the model takes: ${names.join(', ')}${p.label ? `; the label ${JSON.stringify(p.label)} may be present` : ''})`
      : '',
  ]
    .filter(Boolean)
    .join('; ');
}

/** Flattens array fields to `field[i]`, as the jsonl loader named them. */
function flatten(row: RawRow): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (Array.isArray(v)) v.forEach((e, i) => (out[`${k}[${i}]`] = e));
    else out[k] = v;
  }
  return out;
}

function rowsToFeatures(rows: RawRow[], p: Preprocessing, what: string): { x: Float32Array; n: number } {
  const names = namesOf(p);
  const x = new Float32Array(rows.length * names.length);
  rows.forEach((raw, i) => {
    const where = `${what} ${i + 1}`;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new InputError(`${where} is not an object`);
    const row = flatten(raw);
    const problem = columnProblem(Object.keys(row), p, 'field');
    if (problem) throw new InputError(`${where}: ${problem}`);
    names.forEach((f, j) => {
      const v = row[f];
      const num = typeof v === 'number' ? v : typeof v === 'string' ? parseDecimal(v) : NaN;
      if (!Number.isFinite(num))
        throw new InputError(`${where}: ${JSON.stringify(f)} is ${JSON.stringify(v)}; features must be finite numbers`);
      x[i * names.length + j] = num;
    });
  });
  return { x, n: rows.length };
}

/** Raw rows of a csv (header row, then values) or jsonl file, in the recorded feature order. */
export function readRows(
  bytes: Uint8Array,
  format: 'csv' | 'jsonl',
  where: string,
  p: Preprocessing,
): { x: Float32Array; n: number } {
  if (format === 'jsonl') {
    const rows: RawRow[] = [];
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      .toString('utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line.trim() === '') return;
        try {
          rows.push(JSON.parse(line) as RawRow);
        } catch (err) {
          throw new InputError(`line ${i + 1} of ${where} is not valid JSON (${(err as Error).message})`);
        }
      });
    return rowsToFeatures(rows, p, `${where}: row`);
  }
  const names = namesOf(p);
  let cols: number[] | null = null;
  let header: string[] = [];
  const values: number[] = [];
  let n = 0;
  scanCsv(bytes, where, false, (rec, line) => {
    if (!cols) {
      header = rec.map((s) => s.trim());
      const problem = columnProblem(header, p, 'column');
      if (problem) throw new InputError(`${where}: ${problem}`);
      cols = names.map((f) => header.indexOf(f));
      return;
    }
    if (rec.length !== header.length)
      throw new InputError(`line ${line} of ${where} has ${rec.length} fields, the header has ${header.length}`);
    for (let j = 0; j < cols.length; j++) {
      const v = parseDecimal(rec[cols[j]]);
      if (Number.isNaN(v))
        throw new InputError(
          `column ${JSON.stringify(names[j])} has ${JSON.stringify(rec[cols[j]])} at line ${line} of ${where}; ` +
            'features must be numbers',
        );
      values.push(v);
    }
    n++;
  });
  if (!cols) throw new InputError(`${where} is empty: a csv needs a header row`);
  return { x: Float32Array.from(values), n };
}

/** Predictions as csv: `class` and `p_<class>` columns, or `value`. */
export function predictionsCsv(preds: Prediction[], p: Preprocessing): string {
  const q = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  if (p.task === 'regression') return ['value', ...preds.map((r) => String(r.value))].join('\n') + '\n';
  const head = ['class', ...p.classes!.map((c) => q(`p_${c}`))].join(',');
  return [head, ...preds.map((r) => [q(r.class!), ...r.probabilities!.map(String)].join(','))].join('\n') + '\n';
}
