// The part every format shares once rows are decoded: labels to class indices or targets, the seeded split,
// limits, and normalisation statistics from the train split only.
import { validationRows } from '../../spec/helpers';
import { fitsFloat32 } from '../errors';
import { Prng } from '../prng';
import { DatasetError } from './errors';
import { checkMemory } from './source';
import type { DataSplit, FileDataSpec } from './types';

/** Labels as read: class names with an id per row (first-seen order), or regression targets. */
export type RawLabels = { kind: 'classes'; keys: string[]; ids: Int32Array } | { kind: 'values'; values: Float32Array };

/** Decoded rows of any format, before the split. */
export interface RawTable {
  featureShape: number[];
  featureNames: string[] | null;
  /** n * featureSize raw values, row-major. */
  x: Float32Array;
  n: number;
  labels: RawLabels;
  /** The split of each row (SPLIT_TAGS' indices) when the file says it (splitColumn, or one file per split). */
  splitTags?: Uint8Array;
}

/** The values of a split column, in tag order. */
export const SPLIT_TAGS = ['train', 'validation', 'test'] as const;
export type SplitTag = (typeof SPLIT_TAGS)[number];

export interface ShapeOptions {
  /** The seeded split's test share; unused when the table tags its rows (splitTags). */
  testFraction: number;
  trainLimit?: number;
  testLimit?: number;
  /** Compute and apply per-feature normalisation from the train split. */
  normalize: boolean;
  /**
   * Share of the train rows (after trainLimit) moved to the validation split before the statistics are computed,
   * when the table tags no validation rows. Rows chosen by validationMask, as carveValidation chooses them.
   */
  validationFraction?: number;
}

export interface FinishedTable {
  classes: string[] | null;
  train: DataSplit;
  test: DataSplit;
  /** The rows tagged validation (splitTags), normalised like the others; null without tags or without such rows. */
  validation: DataSplit | null;
  normalization: { mean: number[]; std: number[] } | null;
  trainLimit: number;
  testLimit: number;
}

const NUMBER_RE = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;
const INTEGER_RE = /^[+-]?\d+$/;

/** A decimal number, or NaN for anything else (empty, words, hex, Infinity). */
export function parseDecimal(s: string): number {
  if (!NUMBER_RE.test(s)) return NaN;
  const v = Number(s);
  return Number.isFinite(v) ? v : NaN;
}

// The split must not draw from the trainer's own stream (seeded with the run seed itself).
const SPLIT_SEED_SALT = 0x5eed5917;

/** Salt of the validation split's seed: another stream than the run's PRNG and than the test split's. */
const VALIDATION_SEED_SALT = 0x76616c69; // "vali"

export function validationSeed(seed: number): number {
  return (seed ^ VALIDATION_SEED_SALT) >>> 0;
}

/**
 * Which of `n` training rows are validation rows (1) for a share `fraction`: the first validationRows(n, fraction)
 * of a permutation seeded by validationSeed(seed). Null when no row is held out.
 */
export function validationMask(n: number, fraction: number | undefined, seed: number): Uint8Array | null {
  const nVal = validationRows(n, fraction);
  if (nVal === 0) return null;
  const perm = Prng.fromSeed(validationSeed(seed)).permutation(n);
  const isVal = new Uint8Array(n);
  for (let k = 0; k < nVal; k++) isVal[perm[k]] = 1;
  return isVal;
}

/** The split seed derived from the run seed. */
export function splitSeed(seed: number): number {
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new DatasetError('seed', `must be an integer in [0, 2^32), got ${seed}`);
  }
  return (seed ^ SPLIT_SEED_SALT) >>> 0;
}

/** Rows in the train split (the rest are test rows); both must be at least one. */
export function trainRows(n: number, testFraction: number): number {
  const nTrain = Math.round(n * (1 - testFraction));
  if (nTrain < 1 || nTrain >= n) {
    throw new DatasetError(
      'dataset.testFraction',
      `${testFraction} of ${n} rows leaves ${nTrain < 1 ? 'no training rows' : 'no test rows'}; ` +
        'use a fraction that gives both splits at least one row',
    );
  }
  return nTrain;
}

/** Row indices of the train and test splits: a seeded permutation, train first. */
export function splitIndices(n: number, testFraction: number, seed: number): { train: Int32Array; test: Int32Array } {
  const nTrain = trainRows(n, testFraction);
  const perm = Prng.fromSeed(splitSeed(seed)).permutation(n);
  return { train: perm.subarray(0, nTrain), test: perm.subarray(nTrain) };
}

export function checkLimit(v: number | undefined, max: number, field: string, what: string): number {
  if (v === undefined) return max;
  if (!Number.isInteger(v) || v < 1 || v > max) {
    throw new DatasetError(field, `must be an integer in [1, ${max}] (${max} ${what}), got ${v}`);
  }
  return v;
}

/** A binary task's label text as the class it is ('0' or '1': 0, 1, 0.0, 1.0 ...), or an error naming `where`. */
export function binaryLabel(label: string, where: () => string): string {
  const v = parseDecimal(label);
  if (v === 0 || v === 1) return String(v);
  throw new DatasetError(
    'dataset.label',
    `${where()} has the value ${JSON.stringify(label)}, but task binary needs labels 0 and 1 (map the two classes to them)`,
  );
}

/** Class ids of rows from their label texts (first-seen order; encodeLabels sorts). */
export function classLabels(texts: string[]): RawLabels {
  const index = new Map<string, number>();
  const ids = new Int32Array(texts.length);
  texts.forEach((t, i) => {
    let id = index.get(t);
    if (id === undefined) index.set(t, (id = index.size));
    ids[i] = id;
  });
  return { kind: 'classes', keys: [...index.keys()], ids };
}

function encodeLabels(labels: RawLabels): { y: Int32Array | Float32Array; classes: string[] | null } {
  if (labels.kind === 'values') return { y: labels.values, classes: null };
  const allIntegers = labels.keys.every((s) => INTEGER_RE.test(s));
  // Integer labels are classes by value ('07' and '7' are one class), named and ordered numerically.
  const keys = allIntegers ? labels.keys.map((s) => String(Number(s))) : labels.keys;
  const distinct = [...new Set(keys)];
  if (allIntegers) distinct.sort((a, b) => Number(a) - Number(b));
  else distinct.sort(); // UTF-16 code unit order: the same on every machine, unlike localeCompare
  const index = new Map(distinct.map((c, i) => [c, i]));
  const remap = Int32Array.from(keys, (k) => index.get(k)!);
  const y = Int32Array.from(labels.ids, (id) => remap[id]);
  return { y, classes: distinct };
}

/**
 * Collects decoded rows: features into a growing Float32Array (refused once the worker memory estimate passes
 * the limit), labels interned as class ids or parsed as regression targets.
 */
export class RowSink {
  private x: Float32Array;
  private cap = 0;
  private ids: Int32Array | null;
  private targets: Float32Array | null;
  private readonly keys = new Map<string, number>();
  private readonly size: number;
  private tags: Uint8Array | null = null;
  n = 0;

  constructor(
    private readonly spec: FileDataSpec,
    private readonly url: string,
    private readonly featureShape: number[],
    private readonly featureNames: string[] | null,
    private readonly maxBytes: number,
  ) {
    this.size = featureShape.reduce((a, b) => a * b, 1);
    this.x = new Float32Array(0);
    const regression = spec.task === 'regression';
    this.ids = regression ? null : new Int32Array(0);
    this.targets = regression ? new Float32Array(0) : null;
  }

  private grow(): void {
    const need = this.n + 1;
    checkMemory('dataset.path', this.url, need * this.size, this.maxBytes, true);
    const cap = Math.max(need, Math.min(Math.max(1024, this.cap * 2), Math.floor(this.maxBytes / (8 * this.size))));
    const x = new Float32Array(cap * this.size);
    x.set(this.x);
    this.x = x;
    this.cap = cap;
    if (this.tags) {
      const tags = new Uint8Array(cap);
      tags.set(this.tags);
      this.tags = tags;
    }
    if (this.ids) {
      const ids = new Int32Array(cap);
      ids.set(this.ids);
      this.ids = ids;
    } else {
      const t = new Float32Array(cap);
      t.set(this.targets!);
      this.targets = t;
    }
  }

  /** Adds a row; `tag` (an index into SPLIT_TAGS) when the file names each row's split: then for every row. */
  push(values: ArrayLike<number>, label: string, line: number, tag?: number): void {
    if (tag !== undefined && !this.tags) this.tags = new Uint8Array(this.cap);
    if (this.n === this.cap) this.grow();
    const i = this.n;
    if (this.tags) this.tags[i] = tag!;
    if (this.ids) {
      if (this.spec.task === 'binary')
        label = binaryLabel(label, () => `${JSON.stringify(this.spec.label)} at line ${line} of ${this.url}`);
      let id = this.keys.get(label);
      if (id === undefined) this.keys.set(label, (id = this.keys.size));
      this.ids[i] = id;
    } else {
      const v = parseDecimal(label);
      if (Number.isNaN(v)) {
        throw new DatasetError(
          'dataset.label',
          `${JSON.stringify(this.spec.label)} has the non-numeric value ${JSON.stringify(label)} at line ${line} of ` +
            `${this.url}, but task regression needs a number`,
        );
      }
      if (!fitsFloat32(v)) {
        throw new DatasetError(
          'dataset.label',
          `${JSON.stringify(this.spec.label)} at line ${line} of ${this.url} is beyond float32's range (magnitude above ` +
            '3.4e38), which training would store as Infinity; scale the targets',
        );
      }
      this.targets![i] = v;
    }
    this.x.set(values, i * this.size);
    this.n++;
  }

  finish(): RawTable {
    const n = this.n;
    const labels: RawLabels = this.ids
      ? { kind: 'classes', keys: [...this.keys.keys()], ids: this.ids.slice(0, n) }
      : { kind: 'values', values: this.targets!.slice(0, n) };
    return {
      featureShape: this.featureShape,
      featureNames: this.featureNames,
      x: this.x.slice(0, n * this.size),
      n,
      labels,
      ...(this.tags ? { splitTags: this.tags.slice(0, n) } : {}),
    };
  }
}

/** A split column's value as a tag index, or a DatasetError naming the row and what is allowed. */
export function splitTagOf(value: string, column: string, where: string): number {
  const tag = SPLIT_TAGS.indexOf(value.trim().toLowerCase() as SplitTag);
  if (tag >= 0) return tag;
  throw new DatasetError(
    'dataset.splitColumn',
    `${JSON.stringify(column)} is ${value.trim() === '' ? 'empty' : JSON.stringify(value)} at ${where}; ` +
      `a split is one of ${SPLIT_TAGS.join(', ')}`,
  );
}

/**
 * One table of several files' rows (one file per split: `tags` gives each file's split), checked to have the same
 * features; class names are merged by name.
 */
export function mergeTables(tables: RawTable[], tags: number[], fields: string[]): RawTable {
  const first = tables[0];
  tables.forEach((t, i) => {
    const same =
      JSON.stringify(t.featureNames) === JSON.stringify(first.featureNames) &&
      JSON.stringify(t.featureShape) === JSON.stringify(first.featureShape);
    if (!same) {
      throw new DatasetError(
        fields[i],
        `has the features ${(t.featureNames ?? t.featureShape).join(', ')}, but ${fields[0]} has ` +
          `${(first.featureNames ?? first.featureShape).join(', ')}: the split files must have the same columns`,
      );
    }
  });
  const size = first.featureShape.reduce((a, b) => a * b, 1);
  const n = tables.reduce((a, t) => a + t.n, 0);
  const x = new Float32Array(n * size);
  const splitTags = new Uint8Array(n);
  let labels: RawLabels;
  if (first.labels.kind === 'values') {
    const values = new Float32Array(n);
    let off = 0;
    for (const t of tables) {
      values.set((t.labels as { values: Float32Array }).values, off);
      off += t.n;
    }
    labels = { kind: 'values', values };
  } else {
    const keys: string[] = [];
    const index = new Map<string, number>();
    const ids = new Int32Array(n);
    let off = 0;
    for (const t of tables) {
      const l = t.labels as { keys: string[]; ids: Int32Array };
      const global = l.keys.map((k) => {
        let id = index.get(k);
        if (id === undefined) index.set(k, (id = keys.push(k) - 1));
        return id;
      });
      for (let r = 0; r < t.n; r++) ids[off + r] = global[l.ids[r]];
      off += t.n;
    }
    labels = { kind: 'classes', keys, ids };
  }
  let off = 0;
  tables.forEach((t, i) => {
    x.set(t.x, off * size);
    splitTags.fill(tags[i], off, off + t.n);
    off += t.n;
  });
  return { featureShape: first.featureShape, featureNames: first.featureNames, x, n, labels, splitTags };
}

/** The rows of each split, in file order, from the table's tags; train and test must not be empty. */
function taggedSplit(tags: Uint8Array): { train: Int32Array; validation: Int32Array; test: Int32Array } {
  const rows: number[][] = [[], [], []];
  tags.forEach((t, r) => rows[t].push(r));
  for (const t of [0, 2]) {
    if (rows[t].length === 0) {
      throw new DatasetError(
        'dataset.splitColumn',
        `no row is marked ${SPLIT_TAGS[t]}: the ${SPLIT_TAGS[t]} split needs rows`,
      );
    }
  }
  return { train: Int32Array.from(rows[0]), validation: Int32Array.from(rows[1]), test: Int32Array.from(rows[2]) };
}

function gather(x: Float32Array, y: Int32Array | Float32Array, size: number, rows: Int32Array): DataSplit {
  const n = rows.length;
  const gx = new Float32Array(n * size);
  const gy = y instanceof Int32Array ? new Int32Array(n) : new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const r = rows[k];
    gx.set(x.subarray(r * size, (r + 1) * size), k * size);
    gy[k] = y[r];
  }
  return { x: gx, y: gy, n };
}

/** Mean and population standard deviation per feature (std 0 becomes 1, so a constant feature maps to 0). */
export function featureStats(x: Float32Array, n: number, size: number): { mean: number[]; std: number[] } {
  const mean = new Float64Array(size);
  const m2 = new Float64Array(size);
  for (let i = 0; i < n; i++) {
    const off = i * size;
    for (let j = 0; j < size; j++) mean[j] += x[off + j];
  }
  for (let j = 0; j < size; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) {
    const off = i * size;
    for (let j = 0; j < size; j++) {
      const d = x[off + j] - mean[j];
      m2[j] += d * d;
    }
  }
  const std = Array.from(m2, (s) => {
    const v = Math.sqrt(s / n);
    return v > 0 && Number.isFinite(v) ? v : 1;
  });
  return { mean: Array.from(mean), std };
}

/** Scales rows of features in place with stored statistics: (x - mean) / std per feature. */
export function applyNormalization(x: Float32Array, size: number, stats: { mean: number[]; std: number[] }): void {
  for (let off = 0; off < x.length; off += size) {
    for (let j = 0; j < size; j++) x[off + j] = (x[off + j] - stats.mean[j]) / stats.std[j];
  }
}

export function finishTable(t: RawTable, opts: ShapeOptions, seed: number): FinishedTable {
  const size = t.featureShape.reduce((a, b) => a * b, 1);
  const { y, classes } = encodeLabels(t.labels);
  const split = t.splitTags
    ? taggedSplit(t.splitTags)
    : { ...splitIndices(t.n, opts.testFraction, seed), validation: null };
  const trainLimit = checkLimit(opts.trainLimit, split.train.length, 'dataset.trainLimit', 'rows in the train split');
  const testLimit = checkLimit(opts.testLimit, split.test.length, 'dataset.testLimit', 'rows in the test split');
  let trainRowIds = split.train.subarray(0, trainLimit);
  let validationRowIds = split.validation?.length ? split.validation : null;
  const mask = validationRowIds ? null : validationMask(trainRowIds.length, opts.validationFraction, seed);
  if (mask) {
    // Carved before the statistics, so they never see a validation row; both keep the rows' order.
    validationRowIds = trainRowIds.filter((_, k) => mask[k] === 1);
    trainRowIds = trainRowIds.filter((_, k) => mask[k] === 0);
  }
  const train = gather(t.x, y, size, trainRowIds);
  const test = gather(t.x, y, size, split.test.subarray(0, testLimit));
  const validation = validationRowIds ? gather(t.x, y, size, validationRowIds) : null;
  let normalization: FinishedTable['normalization'] = null;
  if (opts.normalize) {
    // From the training rows alone: the validation and test rows are scaled with them, never looked at.
    normalization = featureStats(train.x, train.n, size);
    for (const s of [train, test, validation]) if (s) applyNormalization(s.x, size, normalization);
  }
  return { classes, train, test, validation, normalization, trainLimit, testLimit };
}
