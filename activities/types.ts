// Activity contract. Workflows import these *types* only; implementations live in ./index.ts.
// Everything here travels in Temporal payloads: ids and small summaries, never tensors or bytes.
import type { RunSpec } from '../spec/types';

// One definition of a checkpoint reference, the checkpoint layer's (type-only: workflows may import this file).
import type { CheckpointRef } from '../checkpoint/types';
export type { CheckpointRef };

export interface CheckpointPosition extends CheckpointRef {
  step: number;
  epoch: number;
}

// One definition of an evaluation, the trainer's (a types-only file: workflows may import this one).
import type { EvalResult } from '../training/trainer-types';
export type { EvalResult };

export interface PrepareRunInput {
  runId: string;
  spec: RunSpec;
  /** Fork source; null = continue this run's own checkpoints (if any) or start fresh. */
  from: CheckpointRef | null;
  /** The fork source run's spec: what the fork changes is the difference to it (see spec/fork.ts). */
  sourceSpec?: RunSpec | null;
}

export interface PrepareRunResult {
  /** Where training starts: a checkpoint, or null for a fresh run. */
  start: CheckpointPosition | null;
  /** Why: 'fresh' | 'resume' (this run's existing checkpoints) | 'fork'. */
  mode: 'fresh' | 'resume' | 'fork';
  totalSteps: number;
  stepsPerEpoch: number;
  /**
   * Set when the run's checkpoints lay epochs out from another step than 0 (the replica count changed): where epochs
   * are counted from. Absent otherwise.
   */
  epochAnchor?: number;
  /** Damaged checkpoints that were skipped to find `start`. */
  skipped: Array<{ id: string; reason: string }>;
  specHash: string;
  /** Set when `start` is already the end of training: the run's final numbers, read from that checkpoint. */
  finished: { weightsSha256: string; lastEval: EvalResult | null; backend: string } | null;
}

export interface TrainChunkInput {
  runId: string;
  spec: RunSpec;
  from: CheckpointRef | null;
  /** Set while `from` is the fork source's checkpoint: the source run's spec, so the fork's changes apply there. */
  sourceSpec?: RunSpec | null;
  /** Steps to run in this chunk (fewer if training ends first). */
  steps: number;
  /** A learning rate set by the user (set-lr), applied before the first step of this chunk. */
  learningRateOverride?: number | null;
  /** Why the final commit of this chunk happens if it is cut short by a cancellation (pause/stop/cancel). */
  cutReason?: 'pause' | 'stop' | 'cancel';
}

export interface Recovery {
  /** The checkpoint the workflow asked for. */
  requested: string | null;
  /** The checkpoint actually restored. */
  restoredFrom: string | null;
  reason: string;
  attempt: number;
}

export interface ChunkSummary {
  checkpoint: CheckpointPosition;
  fromStep: number;
  step: number;
  totalSteps: number;
  epoch: number;
  done: boolean;
  stepsRun: number;
  /** Set when the chunk stopped early because it was cancelled (pause/stop/cancel). */
  cut: boolean;
  loss: number | null;
  accuracy: number | null;
  learningRate: number;
  evals: EvalResult[];
  lastEval: EvalResult | null;
  /** Early stopping ended the run at this chunk (spec.earlyStopping). */
  stoppedEarly?: boolean;
  /** Early stopping: the step of the best validation evaluation so far (its checkpoint is the run's best). */
  bestStep?: number | null;
  samplesPerSec: number;
  backend: string;
  /** Checkpoints committed in this chunk (time-based ones and the final one). */
  commits: number;
  /** How the chunk's starting state was obtained. */
  source: 'warm' | 'restored' | 'fresh';
  /** Set when this attempt did not start from exactly `from` (retry after a crash, or a damaged checkpoint). */
  recovery: Recovery | null;
  /** sha256 over the model weights in canonical order. */
  weightsSha256: string;
  trainMs: number;
  commitMs: number;
}

export interface RetentionInput {
  runId: string;
  spec: RunSpec;
  /** Checkpoints that must survive (the one the run continues from). */
  protect: string[];
}

export interface TrainingActivities {
  prepareRun(input: PrepareRunInput): Promise<PrepareRunResult>;
  trainChunk(input: TrainChunkInput): Promise<ChunkSummary>;
  applyRetention(input: RetentionInput): Promise<{ deleted: string[] }>;
}

/** Heartbeat details of trainChunk: the CLI's `watch` reads them for live progress. */
export interface ChunkHeartbeat {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  accuracy: number | null;
  learningRate: number;
  /** 0 in the heartbeat a chunk sends on restoring, before its first step. */
  samplesPerSec: number;
  lastCommitted: CheckpointPosition | null;
}

/** Failure types: non-retryable ones name what is wrong with the input. */
export const FailureTypes = {
  InvalidSpec: 'InvalidSpec',
  ResumeGuard: 'ResumeGuardViolation',
  CheckpointNotFound: 'CheckpointNotFound',
  NoValidCheckpoint: 'NoValidCheckpoint',
  StorageUnavailable: 'StorageUnavailable',
  NothingToTrain: 'NothingToTrain',
  /** A checkpoint refused by the signature check (the error's own name, so it fails the activity at once). */
  CheckpointSignature: 'CheckpointSignatureError',
  /** The chunk's training process died again and again at the same step (the step and the cause are named). */
  TrainingCrashLoop: 'TrainingCrashLoop',
} as const;
