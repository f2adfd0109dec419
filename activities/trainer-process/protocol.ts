// Messages between a worker and its training process (IPC, JSON): ids and small summaries only. Tensors and
// checkpoint bytes stay in the training process and the checkpoint store.
import type { ActivityCancellationDetailsOptions } from '@temporalio/common';
import type { RunSpec } from '../../spec/types';
import type { CheckpointRef, ChunkHeartbeat, ChunkSummary, TrainChunkInput } from '../types';

/** Set in a training process's environment: the pid of the worker it trains for (results name the worker). */
export const WORKER_PID_ENV_VAR = 'DURABLE_TRAIN_WORKER_PID';

/** Set in a training process's environment when it chooses new runs' backends (SupervisorOptions.chooseBackend). */
export const CHOOSE_BACKEND_ENV_VAR = 'DURABLE_TRAIN_CHOOSE_BACKEND';

/** Why the previous training process of this chunk is gone, handed to its replacement (recorded as a recovery). */
export interface Restart {
  /** Restarts of this chunk so far (1 = the first replacement). */
  count: number;
  cause: string;
  /** When the worker saw the previous process die (epoch ms), and the last step it reported. */
  diedAt: number;
  lastStep: number | null;
}

/** The activity's info as the training process sees it (JSON: no task token). */
export interface ChunkTaskInfo {
  attempt: number;
  activityId: string;
  workflowId: string;
  taskQueue: string;
  heartbeatTimeoutMs?: number;
}

/** The activities besides trainChunk that training processes run (their inputs and results are JSON). */
export type TaskActivity = 'runDrill' | 'trainReplica';

export type ToTrainer =
  | { t: 'chunk'; id: number; input: TrainChunkInput; info: ChunkTaskInfo; restart: Restart | null }
  /** Another activity a training process runs for the worker: a recovery drill, or one replica of a round. */
  | { t: 'task'; id: number; activity: TaskActivity; input: unknown; info: ChunkTaskInfo }
  | { t: 'prepare'; spec: RunSpec }
  /** Read a round's global checkpoint into memory: a replica restarted here then restores from it. */
  | { t: 'hold-round'; spec: RunSpec; from: CheckpointRef }
  | { t: 'cancel'; id: number; reason: string; details: ActivityCancellationDetailsOptions }
  | { t: 'cut-reason'; id: number; reason: 'pause' | 'stop' | 'cancel' | null };

/** A failure as it crosses the process boundary: enough to throw the same ApplicationFailure (type, retryability). */
export interface WireError {
  name: string;
  message: string;
  type?: string | null;
  nonRetryable?: boolean;
  details?: unknown[];
  cancelled?: boolean;
  stack?: string;
}

export type FromTrainer =
  | { t: 'ready'; backend: string; ms: number }
  | { t: 'alive' }
  | { t: 'heartbeat'; id: number; details: ChunkHeartbeat | undefined }
  | { t: 'metric'; name: string; args: unknown[] }
  | { t: 'log'; level: string; message: string; meta?: Record<string, unknown> }
  | { t: 'done'; id: number; summary: ChunkSummary }
  /** A task's heartbeat details, and its result. */
  | { t: 'task-beat'; id: number; details: unknown }
  | { t: 'task-done'; id: number; result: unknown }
  | { t: 'failed'; id: number; error: WireError; poisoned: boolean }
  | { t: 'fatal'; message: string };
