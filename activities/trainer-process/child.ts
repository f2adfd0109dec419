// The training process: trains the chunks its worker hands it (see ./supervisor.ts), each in an activity context of
// its own whose heartbeats, metrics and log lines go to the worker over IPC. Its warm trainers and loaded datasets
// stay here between chunks; after a failure that leaves the backend unusable it reports and exits, to be replaced.
import { asyncLocalStorage, CancelledFailure, Context, type Info } from '@temporalio/activity';
import {
  ActivityCancellationDetails,
  noopMetricMeter,
  type LogLevel,
  type LogMetadata,
  type Logger,
} from '@temporalio/common';
import type { ActivityCancellationDetailsHolder } from '@temporalio/common/lib/activity-cancellation-details';
import type { RunSpec } from '../../spec/types';
import { validateSpec } from '../../spec/validate';
import { backendIsAuto, initBackend, useBackend } from '../../training/backend';
import { loadTaskData } from '../../training/task-data';
import type { TrainingMetrics } from '../metrics';
import { createActivities } from '../training-activities';
import { HeldRounds } from '../held-rounds';
import type { ChunkHeartbeat } from '../types';
import type { ReplicaHeartbeat, TrainReplicaInput } from '../replica-types';
import {
  killBeforeManifestFromEnv,
  killWhilePersistingFromEnv,
  replicaFaultFromEnv,
  trainerFaultFromEnv,
  wasmTrap,
} from './failpoints';
import { isBackendPoisoning } from '../failures';
import { CHOOSE_BACKEND_ENV_VAR, type FromTrainer, type Restart, type ToTrainer } from './protocol';
import { toWire } from './wire';

const send = (m: FromTrainer, then?: () => void): void => {
  if (!process.connected) return;
  process.send!(m, undefined, undefined, () => then?.());
};

interface Task {
  cancel(reason: string, details: ActivityCancellationDetails): void;
  cutReason: Promise<'pause' | 'stop' | 'cancel' | null>;
  setCutReason(r: 'pause' | 'stop' | 'cancel' | null): void;
  restart: Restart | null;
}
const tasks = new Map<number, Task>();
const taskOfRun = new Map<string, number>();
let poisoned: Error | null = null;
const fault = trainerFaultFromEnv();
const replicaFault = replicaFaultFromEnv();

/** Metrics are counted by the worker, which serves them: every call is forwarded. */
const metrics = new Proxy({} as TrainingMetrics, {
  get: (_t, name) =>
    name === 'then' ? undefined : (...args: unknown[]) => send({ t: 'metric', name: String(name), args }),
});

const logger: Logger = (() => {
  const at = (level: LogLevel) => (message: string, meta?: LogMetadata) =>
    send({ t: 'log', level, message, meta: meta as Record<string, unknown> | undefined });
  return {
    log: (level: LogLevel, message: string, meta?: LogMetadata) => at(level)(message, meta),
    trace: at('TRACE'),
    debug: at('DEBUG'),
    info: at('INFO'),
    warn: at('WARN'),
    error: at('ERROR'),
  };
})();

/** The step each run's trainer last reported here (for the kill-trainer-persisting failpoint). */
const stepOfRun = new Map<string, number>();
const restartOf = (runId: string) => {
  const id = taskOfRun.get(runId);
  return id === undefined ? null : (tasks.get(id)?.restart ?? null);
};

/** Round checkpoints held for replicas' restarts (the worker asks a spare to hold the round its replicas start from). */
const heldRounds = new HeldRounds();
/** The operator named no backend for every run (DURABLE_TRAIN_BACKEND): this process may follow runs' backends. */
const autoBackend = backendIsAuto();

const activities = createActivities({
  metrics,
  beforeManifest:
    killWhilePersistingFromEnv({ stepOf: (runId) => stepOfRun.get(runId), restarted: (runId) => !!restartOf(runId) }) ??
    killBeforeManifestFromEnv([process.ppid, process.pid]),
  cutReasonOf: (runId) => {
    const id = taskOfRun.get(runId);
    return id === undefined ? Promise.resolve(null) : tasks.get(id)!.cutReason;
  },
  restartOf,
  // One chunk at a time here, so each run can train on its own backend (a small model on wasm: backend-choice.ts),
  // unless the operator named one for every run (DURABLE_TRAIN_BACKEND).
  useBackend: autoBackend ? useBackend : undefined,
  chooseBackend: autoBackend && process.env[CHOOSE_BACKEND_ENV_VAR] === '1',
  heldRounds,
});

/** A heartbeat from the trainer: to the worker, after the test-only faults had their say. */
function heartbeatOf(id: number, runId: string) {
  return (details?: ChunkHeartbeat) => {
    if (details) stepOfRun.set(runId, details.step);
    if (
      fault &&
      fault.kind !== 'kill-trainer-persisting' &&
      fault.runId === runId &&
      details &&
      details.step >= fault.step
    ) {
      if (fault.kind === 'kill-trainer') process.kill(process.pid, 'SIGKILL');
      poisoned = wasmTrap();
      throw poisoned;
    }
    send({ t: 'heartbeat', id, details });
  };
}

function contextOf(
  msg: Extract<ToTrainer, { t: 'chunk' | 'task' }>,
  activityType: string,
  heartbeat: (details?: unknown) => void,
  restart: Restart | null,
): { ctx: Context; task: Task } {
  const abort = new AbortController();
  const holder: ActivityCancellationDetailsHolder = {};
  let reject!: (err: unknown) => void;
  const cancelled = new Promise<never>((_r, rej) => (reject = rej));
  cancelled.catch(() => undefined);
  let setCutReason!: Task['setCutReason'];
  const cutReason = new Promise<'pause' | 'stop' | 'cancel' | null>((resolve) => {
    setCutReason = resolve;
    // The worker asks the workflow; without an answer in time the activity falls back to the chunk's own reason.
    setTimeout(() => resolve(null), 6000).unref();
  });
  const info = {
    ...msg.info,
    taskToken: Buffer.from(`trainer-${msg.id}`),
    base64TaskToken: Buffer.from(`trainer-${msg.id}`).toString('base64'),
    activityType,
    isLocal: false,
    workflowExecution: { workflowId: msg.info.workflowId, runId: '' },
  } as unknown as Info;
  const ctx = new Context(info, cancelled, abort.signal, heartbeat, undefined, logger, noopMetricMeter, holder);
  const task: Task = {
    cancel(reason, details) {
      holder.details = details;
      const err = new CancelledFailure(reason);
      abort.abort(err);
      reject(err);
    },
    cutReason,
    setCutReason,
    restart,
  };
  return { ctx, task };
}

async function runChunk(msg: Extract<ToTrainer, { t: 'chunk' }>): Promise<void> {
  const beat = heartbeatOf(msg.id, msg.input.runId);
  const { ctx, task } = contextOf(msg, 'trainChunk', (d) => beat(d as ChunkHeartbeat | undefined), msg.restart);
  taskOfRun.set(msg.input.runId, msg.id);
  await runTask(msg.id, ctx, task, async () => ({
    t: 'done',
    id: msg.id,
    summary: await activities.trainChunk(msg.input),
  }));
  if (taskOfRun.get(msg.input.runId) === msg.id) taskOfRun.delete(msg.input.runId);
}

/**
 * A drill or a replica (activities/drill.ts, replica.ts), here so that it computes on the run's backend, off the
 * worker's event loop, and a crash of it costs this process, not the worker.
 */
async function runActivity(msg: Extract<ToTrainer, { t: 'task' }>): Promise<void> {
  const beat = (details?: unknown) => {
    if (replicaFault && msg.activity === 'trainReplica' && msg.info.attempt === 1) {
      const { runId, replica } = msg.input as TrainReplicaInput;
      const step = (details as ReplicaHeartbeat | undefined)?.step ?? -1;
      const f = replicaFault;
      if (f.runId === runId && f.replica === replica && step === f.step) process.kill(process.pid, 'SIGKILL');
    }
    send({ t: 'task-beat', id: msg.id, details });
  };
  const { ctx, task } = contextOf(msg, msg.activity, beat, null);
  const fn = activities[msg.activity] as (input: unknown) => Promise<unknown>;
  await runTask(msg.id, ctx, task, async () => ({ t: 'task-done', id: msg.id, result: await fn(msg.input) }));
}

/** Runs one task's work in its activity context and reports how it ended. */
async function runTask(id: number, ctx: Context, task: Task, work: () => Promise<FromTrainer>): Promise<void> {
  tasks.set(id, task);
  try {
    if (poisoned) throw poisoned;
    send(await asyncLocalStorage.run(ctx, work));
  } catch (err) {
    const bad = poisoned !== null || isBackendPoisoning(err);
    // Once the backend may be broken nothing more runs here: the worker replaces this process.
    send({ t: 'failed', id, error: toWire(err), poisoned: bad }, bad ? () => process.exit(70) : undefined);
  } finally {
    tasks.delete(id);
  }
}

/** Loads a run's data into this process's cache (a spare that may take the run over then only restores). */
function prepare(raw: RunSpec): void {
  let spec: RunSpec;
  try {
    spec = validateSpec(raw);
  } catch {
    return; // the chunk itself says what is wrong with it
  }
  loadTaskData(spec).catch(() => undefined);
}

process.on('message', (msg: ToTrainer) => {
  if (msg.t === 'chunk') void runChunk(msg);
  else if (msg.t === 'task') void runActivity(msg);
  else if (msg.t === 'cancel') tasks.get(msg.id)?.cancel(msg.reason, new ActivityCancellationDetails(msg.details));
  else if (msg.t === 'prepare') prepare(msg.spec);
  else if (msg.t === 'hold-round') heldRounds.hold(msg.spec, msg.from);
  else if (msg.t === 'cut-reason') tasks.get(msg.id)?.setCutReason(msg.reason);
});
// The worker is gone (killed, or shut down): so is its training process.
process.on('disconnect', () => process.exit(0));
process.on('uncaughtException', (err) => {
  send({ t: 'fatal', message: `${err.name}: ${err.message}` }, () => process.exit(1));
});
// Signs of life whenever the event loop turns (the trainer yields between steps): the worker heartbeats on them.
setInterval(() => send({ t: 'alive' }), 250);

// A standby process is ready to go: the backend is initialised before the first chunk arrives.
const t0 = Date.now();
initBackend().then(
  (b) => send({ t: 'ready', backend: b.name, ms: Date.now() - t0 }),
  (err: unknown) => send({ t: 'fatal', message: `backend: ${(err as Error).message}` }, () => process.exit(1)),
);
