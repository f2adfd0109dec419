// The run spec: what a user writes (JSON) to describe a training run.
// Pure types: imported by workflows (sandbox), activities, training and the CLI.

import type { ModelSpec } from './model';

export type ModelName = 'mnist-mlp' | 'mnist-cnn';
export type { ModelSpec, LayerListModel } from './model';
export type TaskName = 'classification' | 'regression';
export type LossName = 'crossentropy' | 'mse' | 'mae' | 'huber';
export type DatasetName = 'mnist' | 'fashion-mnist';
export type OptimizerName = 'sgd' | 'momentum' | 'adam';

export interface DatasetSpec {
  name: DatasetName;
  /** Use the first N training examples (default: all 60000). */
  trainLimit?: number;
  /** Use the first N test examples (default: all 10000). */
  testLimit?: number;
}

export interface OptimizerSpec {
  name: OptimizerName;
  learningRate: number;
  /** momentum only (default 0.9). */
  momentum?: number;
  /** adam only. */
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

export type ScheduleSpec =
  | { name: 'constant' }
  | { name: 'step'; every: number; factor: number }
  | { name: 'cosine'; warmupSteps?: number; minLearningRate?: number }
  | { name: 'plateau'; metric?: 'loss' | 'accuracy'; patience?: number; factor?: number; minLearningRate?: number };

export interface AugmentSpec {
  /** Random shift of images by up to N pixels in x and y (0 = off). */
  shift?: number;
}

export interface CheckpointSpec {
  /** file://relative/or/absolute/path (relative to the worker's cwd). */
  storage: string;
  /** Extra commits inside a chunk at most this many seconds apart (0 or absent = only at chunk end). */
  everySeconds?: number;
  /** Retention: keep the newest N checkpoints (default 5). */
  keepLatest?: number;
  /** Retention: keep the best K by a test metric. */
  keepBest?: { k: number; metric: 'accuracy' | 'loss' };
  /** Retention: keep every checkpoint whose step is a multiple of N. */
  keepEverySteps?: number;
}

export interface ResumeSpec {
  /** Allow resuming when the dataset fingerprint differs from the checkpoint's. */
  allowDatasetChange?: boolean;
  /** Allow resuming on a different tfjs backend than the checkpoint was written on. */
  allowBackendChange?: boolean;
}

export interface RunSpec {
  model: ModelSpec;
  /** classification (softmax, cross-entropy, accuracy; the default) or regression (linear output, mse/mae/huber). */
  task?: TaskName;
  /** regression only: mse (default), mae or huber. */
  loss?: LossName;
  dataset: DatasetSpec;
  epochs: number;
  batchSize: number;
  /**
   * At most this many training steps per activity (one "epoch batch"); each chunk ends with a checkpoint.
   * A chunk also ends after `chunkSeconds`, whichever comes first.
   */
  chunkSteps: number;
  /**
   * A chunk ends after this many seconds of training (default 60), so chunks last long enough for the per-chunk
   * orchestration cost (~0.2 s) to stay small whatever the model's step time, and short enough to bound lost work.
   */
  chunkSeconds: number;
  seed: number;
  optimizer: OptimizerSpec;
  schedule?: ScheduleSpec;
  augment?: AugmentSpec;
  /** Dropout rate for models that have dropout (mnist-cnn default 0.25, mnist-mlp default 0). */
  dropout?: number;
  checkpoint: CheckpointSpec;
  resume?: ResumeSpec;
  /** Layers whose weights stay fixed (e.g. ["conv1", "conv2"] when fine-tuning a fork). */
  freeze?: string[];
}
