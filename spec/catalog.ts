// What a run spec may name (models, datasets, optimizers, schedules, layers) and the numeric rules the schema and
// other callers share. No zod and no imports: safe to import anywhere, the workflow sandbox included.

export const MODELS = ['mnist-mlp', 'mnist-cnn'] as const;
export const DATASETS = ['mnist', 'iris'] as const;
export const OPTIMIZERS = ['sgd', 'momentum', 'adam'] as const;
export const SCHEDULES = ['constant', 'step', 'cosine', 'plateau'] as const;
/** Metrics the plateau schedule may watch. */
export const METRICS = ['accuracy', 'loss'] as const;
/** Metrics retention (keepBest) and early stopping may watch: loss, accuracy, or one of the run's `metrics`. */
export const WATCH_METRICS = ['loss', 'accuracy', 'auc', 'precision', 'recall', 'f1'] as const;
export type WatchMetric = (typeof WATCH_METRICS)[number];
/** What a run's training minimises and how its output is read. */
export const TASKS = ['classification', 'regression', 'binary'] as const;
/** Metrics a spec's `metrics` may ask of every evaluation, beyond loss (and accuracy, which every non-regression run has). */
export const EVAL_METRICS = ['accuracy', 'auc', 'precision', 'recall', 'f1'] as const;
/** The evaluation metrics besides loss and accuracy, in the order they are shown. */
export const EXTRA_METRICS = ['auc', 'precision', 'recall', 'f1'] as const;
export type ExtraMetricName = (typeof EXTRA_METRICS)[number];
/** The tasks each evaluation metric fits: precision, recall and f1 are macro averages over the classes for classification. */
export const EVAL_METRIC_TASKS: Record<(typeof EVAL_METRICS)[number], readonly (typeof TASKS)[number][]> = {
  accuracy: ['classification', 'binary'],
  auc: ['binary'],
  precision: ['classification', 'binary'],
  recall: ['classification', 'binary'],
  f1: ['classification', 'binary'],
};

/** Trainable layers of each model, by name (what `freeze` may list). */
export const MODEL_LAYERS: Record<string, readonly string[]> = {
  'mnist-mlp': ['dense1', 'dense2'],
  'mnist-cnn': ['conv1', 'conv2', 'dense1', 'dense2'],
};
/** Examples in each split of each dataset (the upper bound and default of trainLimit/testLimit). */
export const DATASET_SIZES: Record<string, { train: number; test: number }> = {
  mnist: { train: 60000, test: 10000 },
  // iris: 150 rows, 20% held out by a seeded split.
  iris: { train: 120, test: 30 },
};
/** Dropout rate of each model when the spec gives none. */
export const DEFAULT_DROPOUT: Record<string, number> = { 'mnist-mlp': 0, 'mnist-cnn': 0.25 };

/** Largest random shift of an image, in pixels (a third of a 28-pixel MNIST digit already leaves little to learn). */
export const AUGMENT_SHIFT_MAX = 8;
/** Largest learning rate a spec or a change may set. */
export const LEARNING_RATE_MAX = 10;
/**
 * Smallest learning rate that training can apply: the smallest normal float32 (2^-126). Weights and updates are
 * float32, so a smaller rate is denormal or rounds to 0 and the run would silently stop learning.
 */
export const LEARNING_RATE_MIN = 2 ** -126;
/** Bound on step counts anywhere in a spec (schedule periods, warm-up, retention periods). */
export const STEPS_MAX = 1_000_000_000;
/** Bound on the number of checkpoints a retention policy may keep. */
export const KEEP_MAX = 10_000;

/**
 * Why `v` cannot be a learning rate, or undefined when it can: the one rule for `optimizer.learningRate` and for
 * learning-rate changes of a running run.
 */
export function learningRateProblem(v: unknown): string | undefined {
  // null is what JSON makes of Infinity (1e400).
  if (v === null || (typeof v === 'number' && !Number.isFinite(v))) return `must be a finite number, got ${v}`;
  if (typeof v !== 'number') return `must be a number, got ${JSON.stringify(v) ?? String(v)}`;
  if (v <= 0) return `must be > 0, got ${v}`;
  if (v > LEARNING_RATE_MAX) return `must be <= ${LEARNING_RATE_MAX}, got ${v}`;
  return float32LearningRateProblem(v);
}

/** The float32 part of learningRateProblem (the schema checks sign and range itself). */
export function float32LearningRateProblem(v: number): string | undefined {
  if (v < LEARNING_RATE_MIN) {
    return `must be >= ${LEARNING_RATE_MIN} (the smallest normal float32; training computes in float32), got ${v}`;
  }
  return undefined;
}
