// What the training activities are given: the worker's options (ActivityDeps) and what the factory builds from them
// once for the worker's life (TrainingDeps: the warm trainers, counters, alerts and stores every activity shares).
// Each activity is a function of (TrainingDeps, input); createActivities only binds them.
import type { CheckpointKeys, CheckpointManager, CheckpointStore } from '../checkpoint';
import type { RunSpec } from '../spec/types';
import type { BackendInfo, BackendName } from '../training/backend';
import { SpecError, validateSpec } from '../spec/validate';
import type { AlertSink } from '../telemetry/alerts';
import type { RunAlerts } from './chunk/alerts';
import type { WarmTrainers } from './chunk/warm-cache';
import type { HeldRounds } from './held-rounds';
import { nonRetryable } from './failures';
import type { TrainingMetrics } from './metrics';
import type { Restart } from './trainer-process/protocol';
import type { TrainerSupervisor } from './trainer-process/supervisor';
import { FailureTypes } from './types';

export interface ActivityDeps {
  /** Directory that relative file:// storage paths resolve against (default: the worker's cwd). */
  baseDir?: string;
  /** How many runs' trainers to keep warm in memory (default 2). */
  warmRuns?: number;
  /** Called between a commit's blobs and its manifest (crash tests kill the process here). */
  beforeManifest?: (step: number, runId: string) => void | Promise<void>;
  /**
   * Background persists (checkpoint.everySeconds) in a thread of their own, so they never wait for the training loop
   * (default true; DURABLE_TRAIN_PERSIST_THREAD=0 persists on the training thread, hashing on the libuv pool).
   */
  persistThread?: boolean;
  /**
   * Why the workflow cut a chunk short (pause, stop or cancel), asked when it happens: the request reaches the
   * activity only as a cancellation, and the reason known when the chunk was scheduled may have changed since.
   */
  cutReasonOf?: (runId: string) => Promise<'pause' | 'stop' | 'cancel' | null>;
  /** Where commits, failures, recoveries and progress are counted (the worker serves them as /metrics). */
  metrics?: TrainingMetrics;
  /** Checkpoint signing keys (default: DURABLE_TRAIN_CHECKPOINT_KEY; unset = signing off). */
  checkpointKeys?: CheckpointKeys;
  /** Where alerts go (default: DURABLE_TRAIN_ALERT_WEBHOOK, counted in `metrics`). */
  alerts?: AlertSink;
  /** Trains chunks in supervised training processes instead of this one (the worker's default). */
  supervisor?: TrainerSupervisor;
  /** In a training process: why the chunk's previous process is gone, when it is a replacement. */
  restartOf?: (runId: string) => Restart | null;
  /**
   * Where the process chooses its backend itself and computes for one run at a time (a training process, or a worker
   * with one slot that trains in itself): makes a run's backend active, so each run trains and is drilled on its own
   * (chunk/start.ts, drill.ts). Absent elsewhere: the process's one backend for every run.
   */
  useBackend?: (name: BackendName | null) => Promise<BackendInfo>;
  /**
   * With useBackend: a new run's backend is chosen by its size (a small model on wasm, training/backend-choice.ts).
   * Only where what computes for a run can follow its backend (cli/worker.ts chooseBackends).
   */
  chooseBackend?: boolean;
  /**
   * With a supervisor: distributed runs' replicas train in its training processes too, isolated, and a replica whose
   * process dies restarts at once from the round's checkpoint held in a spare's memory. The worker's default
   * (DURABLE_TRAIN_REPLICA_PROCESS=0 keeps them in the worker): interleaved on two cores, a two-worker run's
   * throughput was the same either way (docs/distributed.md).
   */
  replicasInProcesses?: boolean;
  /** In a training process: the round checkpoints it holds in memory for replicas' restarts (held-rounds.ts). */
  heldRounds?: HeldRounds;
}

/** Built once per createActivities from ActivityDeps; shared by every activity call of the worker. */
export interface TrainingDeps {
  warm: WarmTrainers;
  metrics: TrainingMetrics;
  runAlerts: RunAlerts;
  storeFor(spec: RunSpec): CheckpointStore;
  managerFor(spec: RunSpec, runId: string): CheckpointManager;
  cutReasonOf?: ActivityDeps['cutReasonOf'];
  restartOf?: ActivityDeps['restartOf'];
  useBackend?: ActivityDeps['useBackend'];
  chooseBackend?: boolean;
}

/** The spec as validated; a spec that does not validate is a non-retryable InvalidSpec failure. */
export function checkSpec(raw: RunSpec): RunSpec {
  try {
    return validateSpec(raw);
  } catch (err) {
    if (err instanceof SpecError) throw nonRetryable(FailureTypes.InvalidSpec, err.message);
    throw err;
  }
}
