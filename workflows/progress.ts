// The shape of the progress query and of the workflow result. Pure types.
import type { LastDrill } from '../activities/drill-types';
import type { CheckpointPosition, EvalResult, Recovery } from '../activities/types';

export type RunStatus =
  'starting' | 'running' | 'pausing' | 'paused' | 'stopping' | 'completed' | 'stopped' | 'cancelled';

export interface RunProgress {
  runId: string;
  status: RunStatus;
  step: number;
  totalSteps: number;
  stepsPerEpoch: number;
  epoch: number;
  loss: number | null;
  accuracy: number | null;
  learningRate: number | null;
  samplesPerSec: number | null;
  lastCheckpoint: CheckpointPosition | null;
  lastEval: EvalResult | null;
  bestAccuracy: number | null;
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
  status: 'completed' | 'stopped' | 'cancelled';
  step: number;
  totalSteps: number;
  epoch: number;
  /** Final test metrics (last evaluation on the test split); accuracy is null for regression. */
  accuracy: number | null;
  loss: number | null;
  /** Regression only: final test mean squared and mean absolute error. */
  mse?: number;
  mae?: number;
  lastCheckpoint: CheckpointPosition | null;
  weightsSha256: string | null;
  backend: string | null;
  chunks: number;
  recoveries: number;
}
