// Datasets for training: built-ins and files (csv, jsonl, idx; local or S3) decoded into typed arrays, split by a
// seed, normalised from the train split, fingerprinted over the bytes read. Pure Node: no Temporal, no tfjs.
import { createHash } from 'node:crypto';
import {
  checkBuiltinName,
  IRIS_TEST_FRACTION,
  loadIris,
  loadMnist,
  MNIST_TEST_SIZE,
  MNIST_TRAIN_SIZE,
} from './builtin';
import { readCsvTable } from './csv';
import { DatasetError } from './errors';
import { decodeOnThread } from './decode-thread';
import { checkIdxHeaders, IDX_MAX_HEADER_BYTES, readIdxTable } from './idx';
import { readJsonlTable } from './jsonl';
import { checkDataRoot, dataRoots } from './roots';
import type { TextInput } from './text';
import {
  checkMemory,
  checkSize,
  maxDatasetBytes,
  readSource,
  readSourceHashed,
  resolveSource,
  statSource,
  type Source,
} from './source';
import { checkLimit, finishTable, mergeTables, splitSeed, trainRows, type RawTable } from './table';
import type { BuiltinDataSpec, DataSpec, DataTask, FileDataSpec, LoadDataOptions, LoadedData } from './types';

export { DatasetError } from './errors';
export { DEFAULT_MAX_DATASET_BYTES, maxDatasetBytes } from './source';
export { applyNormalization, featureStats, splitIndices, splitSeed, validationMask, validationSeed } from './table';
export type * from './types';

export const DEFAULT_TEST_FRACTION = 0.2;
/** How much of a csv/jsonl file the quick check reads. */
export const VALIDATE_PREFIX_BYTES = 64 * 1024;

const TEXT_READERS: Record<'csv' | 'jsonl', (input: TextInput) => RawTable> = {
  csv: readCsvTable,
  jsonl: readJsonlTable,
};

export function isBuiltinDataSpec(spec: DataSpec): spec is BuiltinDataSpec {
  return !('format' in spec) && 'name' in spec;
}

type CheckedFileSpec = FileDataSpec & { testFraction: number; task: DataTask };

/** The split files of a dataset given as one file per split, in tag order (train, validation, test). */
const SPLIT_FILE_FIELDS = ['train', 'validation', 'test'] as const;

/** Whether the splits come as files of their own (dataset.train, dataset.validation, dataset.test). */
export function hasSplitFiles(spec: FileDataSpec): boolean {
  return SPLIT_FILE_FIELDS.some((f) => spec[f] !== undefined);
}

/** Whether the file says which rows are which (split files or a split column): no seeded split then. */
function explicitSplits(spec: FileDataSpec): boolean {
  return hasSplitFiles(spec) || spec.splitColumn !== undefined;
}

/** The checks of dataset.train/validation/test and dataset.splitColumn against the rest of the spec. */
function checkExplicitSplits(spec: FileDataSpec): void {
  if (hasSplitFiles(spec)) {
    if (spec.path !== undefined) {
      throw new DatasetError(
        'dataset.path',
        'give either dataset.path (split by testFraction or splitColumn) or the split files dataset.train and dataset.test, not both',
      );
    }
    if (spec.format === 'idx') {
      throw new DatasetError(
        'dataset.train',
        'split files are for csv and jsonl; an idx dataset is one images file and one labels file (dataset.path, dataset.label)',
      );
    }
    for (const f of ['train', 'test'] as const) {
      if (typeof spec[f] !== 'string' || spec[f] === '') {
        throw new DatasetError(`dataset.${f}`, 'is required with split files: file://PATH or s3://BUCKET/KEY');
      }
    }
    if (spec.splitColumn !== undefined) {
      throw new DatasetError('dataset.splitColumn', 'does not apply to split files: each file is one split');
    }
  }
  if (spec.splitColumn !== undefined) {
    if (spec.format === 'idx') throw new DatasetError('dataset.splitColumn', 'applies to csv and jsonl, not idx');
    if (typeof spec.splitColumn !== 'string' || spec.splitColumn === '')
      throw new DatasetError('dataset.splitColumn', 'must be a column name');
    if (spec.splitColumn === spec.label)
      throw new DatasetError('dataset.splitColumn', `${JSON.stringify(spec.label)} is the label column`);
  }
  if (explicitSplits(spec) && spec.testFraction !== undefined) {
    throw new DatasetError(
      'dataset.testFraction',
      `does not apply: ${hasSplitFiles(spec) ? 'dataset.test is' : 'the rows marked test in dataset.splitColumn are'} the test split`,
    );
  }
}

const positiveInt = (v: unknown, field: string) => {
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) {
    throw new DatasetError(field, `must be a positive integer, got ${JSON.stringify(v)}`);
  }
};

/** Shape checks of the spec, with defaults filled in (the spec schema does the same; this module stands alone). */
function checkFileSpec(spec: FileDataSpec): CheckedFileSpec {
  if (!['csv', 'jsonl', 'idx'].includes(spec.format)) {
    throw new DatasetError('dataset.format', `must be one of csv, jsonl, idx, got ${JSON.stringify(spec.format)}`);
  }
  checkExplicitSplits(spec);
  if (!hasSplitFiles(spec) && (typeof spec.path !== 'string' || spec.path === '')) {
    throw new DatasetError(
      'dataset.path',
      'is required: file://PATH or s3://BUCKET/KEY (or the split files dataset.train and dataset.test)',
    );
  }
  if (typeof spec.label !== 'string' || spec.label === '') {
    throw new DatasetError(
      'dataset.label',
      spec.format === 'idx'
        ? 'is required: the URL of the labels IDX file'
        : 'is required: the name of the label column',
    );
  }
  if (spec.features !== undefined) {
    if (spec.format === 'idx')
      throw new DatasetError('dataset.features', 'does not apply to idx (every value is a feature)');
    if (!Array.isArray(spec.features) || spec.features.length === 0) {
      throw new DatasetError('dataset.features', 'must be a non-empty list of column names');
    }
    spec.features.forEach((f, i) => {
      if (typeof f !== 'string' || f === '') throw new DatasetError(`dataset.features[${i}]`, 'must be a column name');
      if (f === spec.label)
        throw new DatasetError(`dataset.features[${i}]`, `${JSON.stringify(f)} is the label column`);
      const first = spec.features!.indexOf(f);
      if (first !== i)
        throw new DatasetError(`dataset.features[${i}]`, `repeats dataset.features[${first}] (${JSON.stringify(f)})`);
    });
  }
  const testFraction = spec.testFraction ?? DEFAULT_TEST_FRACTION;
  if (typeof testFraction !== 'number' || !(testFraction > 0 && testFraction < 1)) {
    throw new DatasetError(
      'dataset.testFraction',
      `must be a number in (0, 1), got ${JSON.stringify(spec.testFraction)}`,
    );
  }
  positiveInt(spec.trainLimit, 'dataset.trainLimit');
  positiveInt(spec.testLimit, 'dataset.testLimit');
  checkValidationFraction(spec.validationFraction);
  if (spec.standardize !== undefined && typeof spec.standardize !== 'boolean')
    throw new DatasetError('dataset.standardize', `must be true or false, got ${JSON.stringify(spec.standardize)}`);
  const task = spec.task ?? 'classification';
  if (task !== 'classification' && task !== 'regression' && task !== 'binary') {
    throw new DatasetError(
      'dataset.task',
      `must be classification, regression or binary, got ${JSON.stringify(spec.task)}`,
    );
  }
  return { ...spec, testFraction, task };
}

function checkValidationFraction(v: unknown): void {
  if (v !== undefined && (typeof v !== 'number' || !(v >= 0 && v < 1)))
    throw new DatasetError('dataset.validationFraction', `must be a number in [0, 1), got ${JSON.stringify(v)}`);
}

function checkBuiltinSpec(spec: BuiltinDataSpec): void {
  checkBuiltinName(spec.name);
  positiveInt(spec.trainLimit, 'dataset.trainLimit');
  positiveInt(spec.testLimit, 'dataset.testLimit');
  checkValidationFraction(spec.validationFraction);
}

function sourcesOf(spec: CheckedFileSpec, baseDir: string): Source[] {
  if (hasSplitFiles(spec)) {
    return SPLIT_FILE_FIELDS.filter((f) => spec[f] !== undefined).map((f) =>
      resolveSource(spec[f], baseDir, `dataset.${f}`),
    );
  }
  const out = [resolveSource(spec.path, baseDir, 'dataset.path')];
  if (spec.format === 'idx') out.push(resolveSource(spec.label, baseDir, 'dataset.label'));
  return out;
}

function fingerprintOf(
  spec: CheckedFileSpec,
  table: RawTable,
  trainLimit: number,
  testLimit: number,
  seed: number,
  bytes: Uint8Array[],
): string {
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      format: spec.format,
      // For idx the label is a file whose bytes are hashed below; its URL (like the path) may move freely.
      label: spec.format === 'idx' ? null : spec.label,
      features: table.featureNames,
      // Rows split by the file (split files, a split column): no seeded test share. Fields absent before they
      // existed keep older runs' fingerprints as they were.
      testFraction: explicitSplits(spec) ? undefined : spec.testFraction,
      splitFiles: hasSplitFiles(spec) ? SPLIT_FILE_FIELDS.filter((f) => spec[f] !== undefined) : undefined,
      splitColumn: spec.splitColumn,
      trainLimit,
      testLimit,
      splitSeed: splitSeed(seed),
      // Carved here, before the statistics (absent for runs whose loaded data is carved afterwards).
      validationFraction: spec.validationFraction,
      standardize: spec.standardize === false ? false : undefined,
    }),
  );
  for (const b of bytes) {
    h.update(`\n${b.byteLength}\n`);
    h.update(b);
  }
  return h.digest('hex');
}

function buildTable(
  spec: CheckedFileSpec,
  sources: Array<Pick<Source, 'url' | 'field'>>,
  bytes: Uint8Array[],
  maxBytes: number,
  partial: boolean,
): RawTable {
  if (spec.format === 'idx') {
    return readIdxTable({
      url: sources[0].url,
      bytes: bytes[0],
      labelUrl: sources[1].url,
      labelBytes: bytes[1],
      regression: spec.task === 'regression',
      maxBytes,
    });
  }
  if (hasSplitFiles(spec)) {
    // Each file read as a table of its own (a problem names its field), then one table tagged by file.
    const tables = sources.map((s, i) =>
      withField(s.field, () =>
        TEXT_READERS[spec.format as 'csv' | 'jsonl']({ spec, url: s.url, bytes: bytes[i], partial, maxBytes }),
      ),
    );
    const tags = sources.map((s) => SPLIT_FILE_FIELDS.indexOf(s.field.slice('dataset.'.length) as 'train'));
    return mergeTables(
      tables,
      tags,
      sources.map((s) => s.field),
    );
  }
  return TEXT_READERS[spec.format]({ spec, url: sources[0].url, bytes: bytes[0], partial, maxBytes });
}

/** Runs `read`, naming `field` instead of dataset.path in a DatasetError about the file (one of the split files). */
function withField<T>(field: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof DatasetError && err.field === 'dataset.path') throw new DatasetError(field, err.detail);
    throw err;
  }
}

// Per process: chunks of one run (and runs on one file) decode it once. A few entries, oldest dropped first.
const CACHE_ENTRIES = 4;
const cache = new Map<string, Promise<LoadedData>>();

/** Forgets every cached dataset (tests; or to free memory). */
export function clearDataCache(): void {
  cache.clear();
}

/**
 * Loads a dataset: a built-in by name, or a file. The result is cached per process and shared between callers:
 * treat its arrays as read-only. Bad specs and files throw DatasetError, whose message starts with the spec field.
 */
export async function loadData(spec: DataSpec, opts: LoadDataOptions): Promise<LoadedData> {
  splitSeed(opts.seed); // checks the seed
  const maxBytes = maxDatasetBytes(opts.maxBytes);
  if (isBuiltinDataSpec(spec)) {
    checkBuiltinSpec(spec);
    if (spec.name === 'iris') return loadIris(spec, opts.seed);
    const n = (spec.trainLimit ?? MNIST_TRAIN_SIZE) + (spec.testLimit ?? MNIST_TEST_SIZE);
    checkMemory('dataset.name', 'mnist', n * 784, maxBytes); // before decoding it
    return loadMnist(spec);
  }
  const checked = checkFileSpec(spec);
  const sources = sourcesOf(checked, opts.baseDir);
  const roots = dataRoots([opts.baseDir, ...(opts.roots ?? [])]);
  for (const s of sources)
    if (s.local) await checkDataRoot(s.object.url.slice('file://'.length), roots, s.field, s.url);
  const infos = await Promise.all(sources.map((s) => statSource(s)));
  sources.forEach((s, i) => checkSize(s, infos[i].size, maxBytes)); // before reading it
  // Keyed on the bytes themselves, never on a size or a timestamp: an edit that keeps both is still seen. Reading and
  // hashing is the cheap part; the decoding and the split are what a hit saves.
  // Streamed into one buffer each and hashed on the way (the bytes held once, the hashing spread over the reads).
  const read = await Promise.all(sources.map((s, i) => readSourceHashed(s, infos[i].size, maxBytes)));
  const bytes = read.map((r) => r.bytes);
  const digests = read.map((r) => r.sha256);
  const key = JSON.stringify({
    spec: checked,
    seed: opts.seed,
    maxBytes,
    sources: sources.map((s, i) => [s.object.url, digests[i]]),
  });
  const hit = cache.get(key);
  if (hit) return hit;
  const total = bytes.reduce((a, b) => a + b.byteLength, 0);
  const loading =
    total >= (opts.decodeOnThreadFrom ?? DECODE_ON_THREAD_FROM)
      ? decodeOnThread({
          spec: checked,
          sources: sources.map((s) => ({ url: s.url, field: s.field })),
          bytes,
          maxBytes,
          seed: opts.seed,
        })
      : Promise.resolve().then(() => decodeFile(checked, sources, bytes, maxBytes, opts.seed));
  cache.set(key, loading);
  while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  loading.catch(() => {
    if (cache.get(key) === loading) cache.delete(key);
  });
  return loading;
}

/** Files of this many bytes or more are decoded on a worker thread (decode-thread.ts); smaller ones at once. */
export const DECODE_ON_THREAD_FROM = 4 * 1024 * 1024;

/** Decodes a file dataset's bytes (on the calling thread: decode-thread.ts runs it on another for large files). */
export function decodeFile(
  spec: CheckedFileSpec,
  sources: Array<Pick<Source, 'url' | 'field'>>,
  bytes: Uint8Array[],
  maxBytes: number,
  seed: number,
): LoadedData {
  const table = buildTable(spec, sources, bytes, maxBytes, false);
  const done = finishTable(
    table,
    {
      testFraction: spec.testFraction,
      trainLimit: spec.trainLimit,
      testLimit: spec.testLimit,
      normalize: spec.standardize !== false,
      validationFraction: spec.validationFraction,
    },
    seed,
  );
  return {
    name: spec.path ?? spec.train!,
    featureShape: table.featureShape,
    featureSize: table.featureShape.reduce((a, b) => a * b, 1),
    featureNames: table.featureNames,
    task: spec.task,
    classes: done.classes,
    train: done.train,
    test: done.test,
    ...(done.validation ? { validation: done.validation } : {}),
    normalization: done.normalization,
    fingerprint: fingerprintOf(spec, table, done.trainLimit, done.testLimit, seed, bytes),
    bytesRead: bytes.reduce((a, b) => a + b.byteLength, 0),
  };
}

function checkSplitSizes(n: number, spec: { testFraction: number; trainLimit?: number; testLimit?: number }): void {
  const nTrain = trainRows(n, spec.testFraction);
  checkLimit(spec.trainLimit, nTrain, 'dataset.trainLimit', 'rows in the train split');
  checkLimit(spec.testLimit, n - nTrain, 'dataset.testLimit', 'rows in the test split');
}

/**
 * The quick check before a run starts: the spec's shape, the file exists and is readable and within the size
 * limit, the header has the label and the features, the first rows parse. Reads at most the first 64 KiB of a
 * csv/jsonl file and the headers of idx files. Throws DatasetError naming the field (dataset.path, dataset.label,
 * dataset.features[2], ...).
 */
export async function validateDataFile(spec: DataSpec, opts: { baseDir: string; maxBytes?: number }): Promise<void> {
  const maxBytes = maxDatasetBytes(opts.maxBytes);
  if (isBuiltinDataSpec(spec)) {
    checkBuiltinSpec(spec);
    if (spec.name === 'mnist') {
      checkLimit(spec.trainLimit, MNIST_TRAIN_SIZE, 'dataset.trainLimit', 'examples in the mnist train file');
      checkLimit(spec.testLimit, MNIST_TEST_SIZE, 'dataset.testLimit', 'examples in the mnist test file');
    } else {
      checkSplitSizes(150, {
        testFraction: IRIS_TEST_FRACTION,
        trainLimit: spec.trainLimit,
        testLimit: spec.testLimit,
      });
    }
    return;
  }
  const checked = checkFileSpec(spec);
  const sources = sourcesOf(checked, opts.baseDir);
  const infos = await Promise.all(sources.map((s) => statSource(s)));
  sources.forEach((s, i) => checkSize(s, infos[i].size, maxBytes));
  if (checked.format === 'idx') {
    const [x, y] = await Promise.all(
      sources.map((s, i) => readSource(s, Math.min(infos[i].size, IDX_MAX_HEADER_BYTES))),
    );
    const h = checkIdxHeaders(x, infos[0].size, sources[0].url, y, infos[1].size, sources[1].url);
    checkMemory('dataset.path', sources[0].url, h.x.count, maxBytes);
    checkSplitSizes(h.x.dims[0], checked);
    return;
  }
  // Every file's first 64 KiB (a split dataset has one file per split).
  const partial = infos.some((info) => info.size > VALIDATE_PREFIX_BYTES);
  const bytes = await Promise.all(
    sources.map((s, i) =>
      infos[i].size === 0
        ? new Uint8Array(0)
        : readSource(s, infos[i].size > VALIDATE_PREFIX_BYTES ? VALIDATE_PREFIX_BYTES : undefined),
    ),
  );
  const table = buildTable(checked, sources, bytes, maxBytes, partial);
  if (!partial) {
    finishTable(
      table,
      {
        testFraction: checked.testFraction,
        trainLimit: checked.trainLimit,
        testLimit: checked.testLimit,
        normalize: false,
      },
      0,
    );
  }
}
