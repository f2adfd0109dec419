// The trainer's data types: what a snapshot holds, what a step and an evaluation report.
import type { NumericsVersion } from './numerics';
import type { Preprocessing } from './preprocess';
import type { Topology } from './topology';

export interface NamedTensorBytes {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  /** Raw little-endian bytes, a copy. */
  data: Uint8Array;
  /**
   * Set by a snapshot copied into the buffers of an earlier one (`reuse`): the rows (along shape[0], ascending) where
   * it differs from that snapshot's tensor of the same name. Absent when unknown, or when over half the rows changed.
   */
  changedRows?: Uint32Array;
}

export interface EvalResult {
  epoch: number;
  step: number;
  /**
   * The split evaluated: 'validation' (every epoch end of a run with a validation split: what choices use) or 'test'
   * (once, at the end of such a run; never used for a choice). Absent: the test split of a run without a validation
   * split, evaluated at every epoch end and used for its choices, as every run did before validation splits.
   */
  split?: 'validation' | 'test';
  loss: number;
  /** Classification and binary (null for regression). */
  accuracy: number | null;
  /** Regression only: mean absolute and mean squared error on the split. */
  mae?: number;
  mse?: number;
  /**
   * The metrics spec.metrics asks for, when it does: auc (binary; null when the split holds one class only), and
   * precision, recall and f1 (binary: of class 1; classification: macro averages over the classes).
   */
  auc?: number | null;
  precision?: number;
  recall?: number;
  f1?: number;
}

export interface TrainerState {
  step: number;
  epoch: number;
  batchInEpoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  rng: { algorithm: string; state: number[] };
  /** The schedule's own state, including the current learning rate. */
  schedule: unknown;
  /** The learning rate the next step uses. */
  learningRate: number;
  /** Shape of one example: what a layer-list model without an inputShape was built for (export rebuilds it). */
  featureShape?: number[];
  /** A model built by code registered in a worker: its tf.layers topology, so export can rebuild it without that code. */
  modelTopology?: unknown;
  /**
   * The gradient math the run computes with (numerics.ts). Every snapshot records it; a checkpoint without it was
   * written before it existed, with version 1.
   */
  numerics?: NumericsVersion;
  /** How the model fingerprint is computed (model-fingerprint.ts); absent: written before versions, version 1. */
  fingerprintVersion?: 1 | 2;
  /** Feature names, standardisation, classes and label encoding of the run's data (absent before it existed). */
  preprocessing?: Preprocessing;
  /** The data layout after a change of the replica count (topology.ts); absent in runs that never changed it. */
  topology?: Topology;
  metrics: {
    lastLoss: number | null;
    lastAccuracy: number | null;
    evals: EvalResult[];
    best: { loss: number | null; accuracy: number | null };
    /**
     * Early stopping (spec.earlyStopping): the best value of the watched validation metric, the step and epoch of the
     * evaluation that gave it, and the epochs since without improvement. In the checkpoint, so a resumed run stops at
     * the same step; absent in runs without early stopping.
     */
    earlyStopping?: EarlyStoppingState;
  };
}

export interface EarlyStoppingState {
  best: number | null;
  bestStep: number | null;
  /** Epochs since the best one without an improvement of more than minDelta. */
  wait: number;
}

export interface TrainerSnapshot {
  /** model/*, opt/* and data/order (the int32 permutation of the current epoch). */
  tensors: NamedTensorBytes[];
  state: TrainerState;
}

export interface StepProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  batchInEpoch: number;
  loss: number;
  /** Classification and binary: the batch's accuracy; regression: null. */
  accuracy: number | null;
  learningRate: number;
  samplesPerSec: number;
  /** A model file's Keras weight regularizers: their term of `loss` (absent for a model without). */
  regularizationLoss?: number;
}

export interface TrainResult {
  stepsRun: number;
  done: boolean;
  state: TrainerState;
  /** Evaluations made during this call. */
  evals: EvalResult[];
}

export interface TrainerInfo {
  backend: string;
  datasetFingerprint: string;
  modelFingerprint: string;
  parameterCount: number;
  /** The gradient math this trainer computes with. */
  numerics: NumericsVersion;
}

export const DATA_ORDER_NAME = 'data/order';
