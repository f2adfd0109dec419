// What turns a raw row into the model's input and its output into an answer: feature names, the standardisation
// statistics (from the training rows only), the class names and the label encoding. Recorded in every checkpoint,
// written beside an export as preprocessing.json (docs/preprocessing.md) and applied by `predict`.
// No tfjs.
import type { RunSpec } from '../spec/types';
import { applyNormalization } from './data';
import type { TaskData } from './task-data';

export const PREPROCESSING_JSON = 'preprocessing.json';
export const PREPROCESSING_FORMAT = 'durable-train-preprocessing';

export interface Preprocessing {
  format: typeof PREPROCESSING_FORMAT;
  formatVersion: 1;
  /** binary: one output unit, the probability of class "1" (a logit from our forward pass). */
  task: 'classification' | 'regression' | 'binary';
  /** Shape of one example as the model takes it. */
  featureShape: number[];
  /** The raw columns (csv) or fields (jsonl, arrays as `field[i]`) in model input order; null for images. */
  featureNames: string[] | null;
  /** The label column or field of the training data, when it had one. */
  label: string | null;
  /** x' = (x - mean[j]) / std[j] per feature j, statistics of the training rows only; null: inputs used as read. */
  standardization: { mean: number[]; std: number[] } | null;
  /** Class names in output order: output unit i is class classes[i] (binary: ["0", "1"]); null for regression. */
  classes: string[] | null;
  /**
   * How labels became targets. `class-index`: a label is the index of its name in `classes` (names sorted; integer
   * labels sorted by value, '07' and '7' being one class). `value`: the number itself (regression; binary: 0 or 1).
   */
  labelEncoding: 'class-index' | 'value';
  /** True when the standardisation is the exported model's first layer (`export --bake-preprocessing`). */
  baked?: boolean;
}

/** The preprocessing of a run's data. */
export function preprocessingOf(spec: RunSpec, data: TaskData): Preprocessing {
  const ds = spec.dataset as { label?: unknown; format?: unknown };
  return {
    format: PREPROCESSING_FORMAT,
    formatVersion: 1,
    task: data.task,
    featureShape: data.featureShape.slice(),
    featureNames: data.featureNames ? data.featureNames.slice() : null,
    label: typeof ds.label === 'string' && ds.format !== 'idx' ? ds.label : null,
    standardization: data.normalization
      ? { mean: data.normalization.mean.slice(), std: data.normalization.std.slice() }
      : null,
    classes: data.classes ? data.classes.slice() : null,
    labelEncoding: data.task === 'classification' ? 'class-index' : 'value',
  };
}

/** Checks a preprocessing record read from a file; throws naming the field. */
export function checkPreprocessing(v: unknown, where: string): Preprocessing {
  const p = v as Preprocessing;
  const fail = (field: string, what: string) => {
    throw new Error(`${where}: ${field} ${what}`);
  };
  if (!p || typeof p !== 'object' || p.format !== PREPROCESSING_FORMAT)
    fail('format', `is not ${JSON.stringify(PREPROCESSING_FORMAT)}`);
  if (p.formatVersion !== 1) fail('formatVersion', `${JSON.stringify(p.formatVersion)} is not supported (1 is)`);
  if (p.task !== 'classification' && p.task !== 'regression' && p.task !== 'binary')
    fail('task', 'must be classification, regression or binary');
  if (!Array.isArray(p.featureShape) || !p.featureShape.every((d) => Number.isInteger(d) && d >= 1))
    fail('featureShape', 'must be a list of positive integers');
  const size = p.featureShape.reduce((a, b) => a * b, 1);
  if (p.featureNames !== null && !(Array.isArray(p.featureNames) && p.featureNames.length === size))
    fail('featureNames', `must be null or ${size} names`);
  const s = p.standardization;
  if (s !== null && !(s && s.mean?.length === size && s.std?.length === size && s.std.every((x) => x > 0)))
    fail('standardization', `must be null or { mean, std } of ${size} numbers (std > 0)`);
  if (p.task !== 'regression' && !(Array.isArray(p.classes) && p.classes.length >= 1))
    fail('classes', 'must list the class names');
  return p;
}

/** Standardises rows in place ((x - mean) / std per feature), the same arithmetic the loader used for training. */
export function standardize(x: Float32Array, p: Preprocessing): void {
  if (p.standardization) applyNormalization(x, p.standardization.mean.length, p.standardization);
}
