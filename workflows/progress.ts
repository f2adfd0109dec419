// The shape of the progress query and of the workflow result. Pure types.
import type { LastDrill } from '../activities/drill-types';
import type { CheckpointPosition, EvalResult, Recovery } from '../activities/types';

export type RunStatus =
  'starting' | 'running' | 'pausing' | 'paused' | 'stopping' | 'completed' | 'stopped' | 'stopped-early' | 'cancelled';

export interface RunProgress {
  runId: string;
  status: RunStatus;
  step: number;
  totalSteps: number;
  stepsPerEpoch: number;
  /** Set when the replica count changed at this execution's start: the step epochs are counted from (roundSteps). */
  epochAnchor?: number;
  epoch: number;
  loss: number | null;
  accuracy: number | null;
  learningRate: number | null;
  samplesPerSec: number | null;
  lastCheckpoint: CheckpointPosition | null;
  /** The last evaluation (validation at epoch ends of a run with a validation split; test at its end). */
  lastEval: EvalResult | null;
  /** The last evaluation of the validation split (runs with one). */
  lastValidation?: EvalResult | null;
  /** Best accuracy of the evaluations that choose: the validation split's, or the test split's for runs without one. */
  bestAccuracy: number | null;
  /** Early stopping: the checkpoint of the best validation evaluation so far. */
  bestCheckpoint?: CheckpointPosition | null;
  chunks: number;
  /** Recoveries: retries after a crash and fallbacks past damaged checkpoints. */
  recoveries: Array<Recovery & { step: number }>;
  /** Damaged checkpoints skipped when the run started. */
  skippedCheckpoints: Array<{ id: string; reason: string }>;
  learningRateChanges: Array<{ step: number; value: number }>;
  /**
   * Rollbacks after a NaN or infinite value (spec.onNonFinite "rollback"): where it happened, the checkpoint training
   * resumed from and the halved rate. Absent in runs from before rollbacks existed.
   */
  rollbacks?: Array<{ step: number | null; from: string | null; learningRate: number }>;
  startMode: 'fresh' | 'resume' | 'fork' | null;
  backend: string | null;
  continuedAsNew: number;
  result: RunResult | null;
  /** The last recovery drill's outcome and time (absent until a drill reports to the running run). */
  lastDrill?: LastDrill | null;
  /** Distributed runs (spec.distributed): the last round's replicas, which worker trained each, and the sync time. */
  lastRound?: RoundProgress;
}

export interface RoundProgress {
  round: number;
  syncMs: number;
  replicas: Array<{
    replica: number;
    worker: string;
    attempt: number;
    samplesPerSec: number;
    trainMs: number;
    reused: boolean;
  }>;
}

export interface RunResult {
  runId: string;
  /** stopped-early: early stopping ended the run (spec.earlyStopping); `bestCheckpoint` names its best. */
  status: 'completed' | 'stopped' | 'stopped-early' | 'cancelled';
  step: number;
  totalSteps: number;
  epoch: number;
  /** Final test metrics (the test split's evaluation at the end; null when the run ended before it); accuracy is null for regression. */
  accuracy: number | null;
  loss: number | null;
  /** Regression only: final test mean squared and mean absolute error. */
  mse?: number;
  mae?: number;
  /** The final test evaluation's metrics that spec.metrics asks for (auc null: the test split held one class). */
  auc?: number | null;
  precision?: number;
  recall?: number;
  f1?: number;
  /** Runs with a validation split: its last evaluation (what the run's choices were made on). */
  validation?: EvalResult;
  lastCheckpoint: CheckpointPosition | null;
  /** Early stopping: the checkpoint of the best validation evaluation (fork from it, or export it). */
  bestCheckpoint?: CheckpointPosition | null;
  weightsSha256: string | null;
  backend: string | null;
  chunks: number;
  recoveries: number;
}
