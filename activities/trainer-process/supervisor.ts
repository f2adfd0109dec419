// Supervised training processes. The worker keeps the trainChunk activity (and its heartbeats to Temporal) and hands
// the chunk to a training process it forked (./child.ts). When that process dies (SIGKILL, OOM, a crash, or a
// failure that leaves its backend unusable), the worker replaces it at once and the chunk continues from its newest
// committed checkpoint, while the activity keeps heartbeating: Temporal never waits out a heartbeat timeout for it.
// A process that keeps dying at the same step is a crash loop: the chunk fails, non-retryably, naming step and cause.
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { CancelledFailure, type Context } from '@temporalio/activity';
import { nonRetryable } from '../failures';
import type { TrainingMetrics } from '../metrics';
import { FailureTypes, type ChunkHeartbeat, type ChunkSummary, type TrainChunkInput } from '../types';
import {
  CHOOSE_BACKEND_ENV_VAR,
  type ChunkTaskInfo,
  type FromTrainer,
  type Restart,
  type TaskActivity,
  type ToTrainer,
  type WireError,
  WORKER_PID_ENV_VAR,
} from './protocol';
import { fromWire } from './wire';
import type { RunSpec } from '../../spec/types';
import type { DrillInput, DrillReport } from '../drill-types';
import type { ReplicaResult, TrainReplicaInput } from '../replica-types';
import { KEEP_ROUNDS, keyOf } from '../held-rounds';

export interface SupervisorOptions {
  /** Deaths at one step before the chunk fails as a crash loop (DURABLE_TRAIN_TRAINER_RETRIES, default 3). */
  maxDeathsAtStep?: number;
  /**
   * Idle training processes kept ready (backend initialised, the data of the runs this worker trains loaded), so that
   * a first chunk, or the replacement of a dead process, starts with the restore (DURABLE_TRAIN_TRAINER_SPARES,
   * default 1; 0 starts a process when a chunk needs one).
   */
  spares?: number;
  /** Metrics the training processes report (the worker serves them). */
  metrics?: TrainingMetrics;
  /** Where the supervisor says what it does (default stderr). */
  say?: (line: string) => void;
  /** The training process's script (tests). */
  entry?: string;
  /**
   * The training processes choose a new run's backend by its size (a small model on wasm: training/backend-choice.ts)
   * when they choose their backend themselves (DURABLE_TRAIN_BACKEND unset); they follow a restored run's, and replay a
   * drill on it, in any case.
   */
  chooseBackend?: boolean;
}

const STARTUP_GRACE_MS = 60_000;
/** A training process silent this long (or twice the heartbeat timeout, if longer) is hung. */
const HANG_MS = 30_000;

/** Metric calls a training process may make on the worker's metrics. */
const METRICS = new Set([
  'committed',
  'commitFailed',
  'restored',
  'recovered',
  'progress',
  'chunkInFlight',
  'runEnded',
  'drillPassed',
  'drillFailed',
  'alertDelivered',
  'alertSuppressed',
  'alertNoSink',
  'alertFailed',
]);

/** A round's checkpoint, for training processes to hold in memory (see runTask). */
interface HeldRound {
  key: string;
  hold: Extract<ToTrainer, { t: 'hold-round' }>;
}

type Outcome =
  | { kind: 'done'; summary: ChunkSummary }
  | { kind: 'failed'; error: WireError }
  | { kind: 'died'; cause: string; lastStep: number | null };

/** One forked training process. */
class TrainerProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<string>;
  busy = false;
  /** Runs whose trainer this process may hold warm (it trained their last chunk). */
  readonly runs = new Set<string>();
  /** The datasets `prepare` had it load (JSON of spec.dataset): each once, as a file dataset is re-read each time. */
  readonly prepared = new Set<string>();
  /** The round checkpoints `hold-round` had it read into memory (runId and id). */
  readonly heldRounds = new Set<string>();
  lastSeen = Date.now();
  readonly startedAt = Date.now();
  /** Set once its backend is initialised (a process that is still starting shows no signs of life yet). */
  isReady = false;
  private fatal: string | null = null;
  private readonly handlers = new Map<number, (m: FromTrainer) => void>();

  constructor(
    entry: string,
    metrics: TrainingMetrics | undefined,
    say: (line: string) => void,
    chooseBackend: boolean,
  ) {
    const env = {
      ...process.env,
      [CHOOSE_BACKEND_ENV_VAR]: chooseBackend ? '1' : '0',
      [WORKER_PID_ENV_VAR]: String(process.pid),
    };
    this.child = fork(entry, [], { serialization: 'json', env });
    this.child.unref();
    (this.child.channel as { unref?: () => void } | undefined)?.unref?.();
    say(`training process ${this.child.pid} started`);
    let readyFn!: () => void;
    this.ready = new Promise<void>((resolve) => (readyFn = resolve));
    this.exited = new Promise<string>((resolve) =>
      this.child.once('exit', (code, signal) => {
        const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
        readyFn();
        resolve(this.fatal ? `${this.fatal} (${how})` : how);
      }),
    );
    this.child.on('message', (m: FromTrainer) => {
      this.lastSeen = Date.now();
      if (m.t === 'ready') {
        this.isReady = true;
        say(`training process ${this.child.pid} ready in ${Date.now() - this.startedAt} ms (backend ${m.backend})`);
        readyFn();
      } else if (m.t === 'fatal') this.fatal = m.message;
      else if (m.t === 'metric' && metrics && METRICS.has(m.name))
        (metrics as unknown as Record<string, (...a: unknown[]) => void>)[m.name](...m.args);
      else if ('id' in m) this.handlers.get(m.id)?.(m);
      else if (m.t === 'log') this.handlers.forEach((h) => h(m));
    });
    // A send to a process that just died fails: its exit is handled through `exited`.
    this.child.on('error', () => undefined);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  send(m: ToTrainer): void {
    if (this.alive && this.child.connected) this.child.send(m, (err) => void err);
  }

  on(id: number, h: (m: FromTrainer) => void): () => void {
    this.handlers.set(id, h);
    return () => this.handlers.delete(id);
  }

  kill(): void {
    if (this.alive) this.child.kill('SIGKILL');
  }
}

export class TrainerSupervisor {
  private readonly procs: TrainerProcess[] = [];
  private nextId = 1;
  private readonly entry: string;
  private readonly say: (line: string) => void;
  readonly maxDeathsAtStep: number;

  constructor(private readonly o: SupervisorOptions = {}) {
    this.entry = o.entry ?? path.join(__dirname, 'child.js');
    this.say = o.say ?? ((line) => console.error(`durable-train worker: ${line}`));
    this.maxDeathsAtStep = o.maxDeathsAtStep ?? 3;
    this.ensureSpares();
  }

  private get spares(): number {
    return this.o.spares ?? 1;
  }

  private idle(): TrainerProcess[] {
    return this.procs.filter((p) => !p.busy && p.alive);
  }

  /** Starts processes until `spares` are idle. */
  private ensureSpares(): void {
    for (let n = this.idle().length; n < this.spares && !this.closed; n++) this.spawn();
  }

  private spawn(): TrainerProcess {
    const p = new TrainerProcess(this.entry, this.o.metrics, this.say, this.o.chooseBackend ?? false);
    this.procs.push(p);
    void p.exited.then(() => {
      const i = this.procs.indexOf(p);
      if (i >= 0) this.procs.splice(i, 1);
      // A spare that died is replaced, so the next chunk does not wait for a backend to start.
      if (!p.busy) this.ensureSpares();
    });
    return p;
  }

  private closed = false;

  /** An idle training process, preferring one that trained this run last (it may hold its trainer warm). */
  private acquire(runId: string): TrainerProcess {
    const idle = this.idle();
    const ready = idle.filter((q) => q.isReady);
    const p =
      idle.find((q) => q.runs.has(runId)) ??
      ready.find((q) => q.runs.size === 0) ??
      ready[0] ??
      idle[0] ??
      this.spawn();
    for (const q of this.procs) if (q !== p) q.runs.delete(runId);
    if (!p.runs.has(runId)) this.say(`training process ${p.child.pid} takes run ${runId}`);
    p.busy = true;
    this.ensureSpares();
    return p;
  }

  /**
   * Has the idle processes load a run's data now (each keeps what it loaded): a standby worker's spares are then ready
   * to take the run over with only the restore.
   */
  prepare(spec: RunSpec): void {
    this.tellIdleOnce((q) => q.prepared, JSON.stringify(spec.dataset), { t: 'prepare', spec });
  }

  /** Sends `msg` to each idle process whose set (`seen`) does not have `key` yet, and records it there. */
  private tellIdleOnce(seen: (q: TrainerProcess) => Set<string>, key: string, msg: ToTrainer): void {
    for (const q of this.idle()) {
      if (seen(q).has(key)) continue;
      seen(q).add(key);
      q.send(msg);
    }
  }

  /** The pids of the training processes (tests and benchmarks kill them). */
  pids(): number[] {
    return this.procs.filter((p) => p.alive).map((p) => p.child.pid!);
  }

  /** Kills every training process (the worker is shutting down). */
  close(): void {
    this.closed = true;
    for (const p of this.procs) p.kill();
  }

  /**
   * Trains one chunk in a training process. Restarts a dead process from the chunk's newest committed checkpoint;
   * fails with TrainingCrashLoop after `maxDeathsAtStep` deaths at the same step.
   */
  async trainChunk(
    ctx: Context,
    input: TrainChunkInput,
    cutReasonOf?: (runId: string) => Promise<'pause' | 'stop' | 'cancel' | null>,
  ): Promise<ChunkSummary> {
    let restart = null as Restart | null;
    let deaths = 0;
    let deathStep: number | null | undefined;
    // What a retried attempt reads: the previous attempt's details until this one has its own.
    let details = ctx.info.heartbeatDetails as ChunkHeartbeat | undefined;
    for (;;) {
      const proc = this.acquire(input.runId);
      // The spares load this run's data now: the one that may take over from `proc` then only restores.
      for (const q of this.idle()) q.send({ t: 'prepare', spec: input.spec });
      const outcome = await this.attempt(
        proc,
        ctx,
        input,
        restart,
        (d) => (details = d),
        () => details,
        cutReasonOf,
      );
      if (outcome.kind === 'done') return outcome.summary;
      if (outcome.kind === 'failed') throw fromWire(outcome.error);
      const step = outcome.lastStep === null ? null : outcome.lastStep + 1;
      deaths = step === deathStep ? deaths + 1 : 1;
      deathStep = step;
      const where = step === null ? 'before its first step' : `at step ${step}`;
      this.say(`training process of run ${input.runId} died ${where}: ${outcome.cause}`);
      const cd = ctx.cancellationDetails;
      if (ctx.cancellationSignal.aborted && (cd?.notFound || cd?.timedOut || cd?.reset))
        throw new CancelledFailure('attempt superseded');
      if (deaths >= this.maxDeathsAtStep) {
        throw nonRetryable(
          FailureTypes.TrainingCrashLoop,
          `run ${input.runId}: the training process died ${deaths} times ${where}` +
            (details?.lastCommitted ? ` (newest checkpoint ${details.lastCommitted.id})` : '') +
            `; last cause: ${outcome.cause}`,
        );
      }
      restart = {
        count: (restart?.count ?? 0) + 1,
        cause: outcome.cause,
        diedAt: Date.now(),
        lastStep: outcome.lastStep,
      };
    }
  }

  /** A recovery drill (activities/drill.ts) in a training process: see runTask. */
  runDrill(ctx: Context, input: DrillInput): Promise<DrillReport> {
    return this.runTask(ctx, 'runDrill', input, `drill of run ${input.runId}`) as Promise<DrillReport>;
  }

  /** One replica's round of a distributed run (activities/replica.ts) in a training process: see runTask. */
  trainReplica(ctx: Context, input: TrainReplicaInput): Promise<ReplicaResult> {
    const what = `replica ${input.replica} of run ${input.runId}`;
    const from = input.from;
    const round: HeldRound | null = from
      ? { key: keyOf(from), hold: { t: 'hold-round', spec: input.spec, from } }
      : null;
    // The spares load the run's data too: the one that takes over from a dead replica's process then only restores.
    this.prepare(input.spec);
    return this.runTask(ctx, 'trainReplica', input, what, round) as Promise<ReplicaResult>;
  }

  /**
   * Runs an activity in an idle training process (one holding no run, when there is one), heartbeating while it
   * lives. A process that dies meanwhile is replaced at once and the activity runs again from its start, as the next
   * attempt would (a replica restores the round's checkpoint, or keeps the result it had committed), without waiting
   * for Temporal's heartbeat timeout; after `maxDeathsAtStep` deaths it fails, non-retryably, with the last cause (a
   * checkpoint that kills every process it is trained in is what a drill is for).
   */
  private async runTask(
    ctx: Context,
    activity: TaskActivity,
    input: unknown,
    what: string,
    round: HeldRound | null = null,
  ): Promise<unknown> {
    let diedAt = 0;
    for (let deaths = 0; ;) {
      // A restart goes to a process that holds the round's checkpoint in memory, when one does.
      const proc = this.acquireFree(deaths > 0 && round ? (q) => q.heldRounds.has(round.key) : undefined);
      this.say(`training process ${proc.child.pid} runs the ${what}`);
      // The idle processes read the round's checkpoint into memory: the one that may take over restores from there.
      if (round) {
        this.tellIdleOnce((q) => q.heldRounds, round.key, round.hold);
        // A process keeps the newest KEEP_ROUNDS (held-rounds.ts): older keys name nothing it still holds.
        for (const q of this.procs)
          for (const k of [...q.heldRounds].slice(0, Math.max(0, q.heldRounds.size - KEEP_ROUNDS)))
            q.heldRounds.delete(k);
      }
      const again = diedAt
        ? () => this.say(`the ${what} trains again ${Date.now() - diedAt} ms after its training process died`)
        : undefined;
      const outcome = await this.taskAttempt(proc, ctx, activity, input, ctx.info.attempt + deaths, again);
      if ('result' in outcome) return outcome.result;
      if ('error' in outcome) throw fromWire(outcome.error);
      deaths++;
      diedAt = Date.now();
      this.say(`training process of the ${what} died: ${outcome.cause}`);
      if (ctx.cancellationSignal.aborted) throw new CancelledFailure(`${what} cancelled`);
      if (deaths >= this.maxDeathsAtStep) {
        throw nonRetryable(
          FailureTypes.TrainingCrashLoop,
          `${what}: the training process died ${deaths} times; last cause: ${outcome.cause}`,
        );
      }
    }
  }

  /** An idle process for work of no run of its own: one holding no run's trainer if any, so none loses its warmth. */
  private acquireFree(prefer?: (q: TrainerProcess) => boolean): TrainerProcess {
    const idle = this.idle();
    const ready = idle.filter((q) => q.isReady);
    const p =
      (prefer && idle.find(prefer)) ?? ready.find((q) => q.runs.size === 0) ?? ready[0] ?? idle[0] ?? this.spawn();
    p.busy = true;
    this.ensureSpares();
    return p;
  }

  private async taskAttempt(
    proc: TrainerProcess,
    ctx: Context,
    activity: TaskActivity,
    input: unknown,
    attempt: number,
    /** Called on the attempt's first heartbeat with details (a step trained). */
    trainsAgain?: () => void,
  ): Promise<{ result: unknown } | { error: WireError } | { cause: string }> {
    const id = this.nextId++;
    let details: unknown;
    const keepAlive = this.keepAlive(proc, ctx, () => details);
    let poisonedBy: string | null = null;
    let settle!: (o: { result: unknown } | { error: WireError }) => void;
    const settled = new Promise<{ result: unknown } | { error: WireError }>((resolve) => (settle = resolve));
    const off = proc.on(id, (m) => {
      if (m.t === 'task-beat') {
        if (details === undefined && m.details !== undefined) trainsAgain?.();
        ctx.heartbeat((details = m.details));
      } else if (m.t === 'task-done') settle({ result: m.result });
      else if (m.t === 'log') ctx.log.log(m.level as 'INFO', m.message, m.meta);
      else if (m.t === 'failed') {
        if (m.poisoned) poisonedBy = `backend unusable: ${m.error.name}: ${m.error.message}`;
        else settle({ error: m.error });
      }
    });
    const ended = Promise.race([settled, proc.exited.then((cause) => ({ cause: poisonedBy ?? cause }))]).then(
      (result) => {
        if ('cause' in result) proc.kill();
        return result;
      },
    );
    const msg: ToTrainer = { t: 'task', id, activity, input, info: { ...taskInfoOf(ctx), attempt } };
    return this.exchange(
      proc,
      ctx,
      msg,
      () => proc.send(cancelOf(ctx, id)),
      ended,
      () => {
        clearInterval(keepAlive);
        off();
      },
    );
  }

  /**
   * Heartbeats the activity every second (with `details()`) while `proc` lives and is not hung, however long one step
   * takes: so the heartbeat timeout only has to cover this process's own pauses, and can be short (a lost worker is
   * noticed within seconds) for models of any size. A process silent for longer than max(2 x the heartbeat timeout,
   * 30 s) is hung: it goes, and the task goes on in a fresh one.
   */
  private keepAlive(proc: TrainerProcess, ctx: Context, details: () => unknown): NodeJS.Timeout {
    const hangMs = Math.max(2 * (ctx.info.heartbeatTimeoutMs || 10_000), HANG_MS);
    return setInterval(() => {
      const silent = Date.now() - proc.lastSeen;
      // Loading tfjs blocks a starting process's event loop for a while: it gets a minute to become ready.
      const starting = !proc.isReady && Date.now() - proc.startedAt < STARTUP_GRACE_MS;
      if (silent > hangMs && !starting) return proc.kill();
      ctx.heartbeat(details());
    }, 1000);
  }

  /**
   * Hands a task to `proc` and waits until it has `ended`, passing the activity's cancellation on; then the process is
   * free again and `done` has cleared the task's listeners.
   */
  private async exchange<T>(
    proc: TrainerProcess,
    ctx: Context,
    msg: ToTrainer,
    onCancel: () => void,
    ended: Promise<T>,
    done: () => void,
  ): Promise<T> {
    try {
      proc.send(msg);
      if (ctx.cancellationSignal.aborted) onCancel();
      else ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });
      return await ended;
    } finally {
      done();
      ctx.cancellationSignal.removeEventListener('abort', onCancel);
      proc.busy = false;
    }
  }

  private async attempt(
    proc: TrainerProcess,
    ctx: Context,
    input: TrainChunkInput,
    restart: Restart | null,
    onDetails: (d: ChunkHeartbeat) => void,
    details: () => ChunkHeartbeat | undefined,
    cutReasonOf?: (runId: string) => Promise<'pause' | 'stop' | 'cancel' | null>,
  ): Promise<Outcome> {
    const id = this.nextId++;
    let lastStep: number | null = null;
    let trainedAgain = false;
    const t0 = Date.now();
    // A retried or restarted attempt heartbeats the details it had (never empty: `watch` and the next retry read
    // them). A first attempt has none until its trainer restored: it heartbeats without details meanwhile, so a
    // cold start (data to load, a backend to start) is not taken for a lost worker.
    const keepAlive = this.keepAlive(proc, ctx, details);
    let outcome: Outcome | null = null;
    let settle!: (o: Outcome) => void;
    const settled = new Promise<Outcome>((resolve) => (settle = resolve));
    const off = proc.on(id, (m) => {
      if (m.t === 'heartbeat') {
        // The heartbeat a trainer sends on restoring (samplesPerSec 0) is for an attempt with nothing to say yet; a
        // retried or restarted one already heartbeats the details it had (and its first step is then not delayed by
        // the heartbeat throttle).
        if (m.details?.samplesPerSec === 0 && details() !== undefined) return;
        if (m.details) {
          // The first heartbeat of a step (the one sent on restoring has samplesPerSec 0).
          if (restart && !trainedAgain && m.details.samplesPerSec > 0) {
            trainedAgain = true;
            this.say(
              `run ${input.runId} trains again at step ${m.details.step} (lost process had reached ` +
                `${restart.lastStep ?? 'no step'}), ${Date.now() - restart.diedAt} ms after its training process died ` +
                `(${Date.now() - t0} ms in the new one)`,
            );
          }
          lastStep = m.details.step;
          onDetails(m.details);
        }
        if (m.details) ctx.heartbeat(m.details);
      } else if (m.t === 'log') ctx.log.log(m.level as 'INFO', m.message, m.meta);
      else if (m.t === 'done') settle({ kind: 'done', summary: m.summary });
      else if (m.t === 'failed') {
        // A failure that may have broken the backend ends this process: the chunk goes on in a fresh one.
        if (m.poisoned)
          outcome = { kind: 'died', cause: `backend unusable: ${m.error.name}: ${m.error.message}`, lastStep };
        else settle({ kind: 'failed', error: m.error });
      }
    });
    const onCancel = () => {
      proc.send(cancelOf(ctx, id));
      void (cutReasonOf?.(input.runId) ?? Promise.resolve(null))
        .catch(() => null)
        .then((reason) => proc.send({ t: 'cut-reason', id, reason }));
    };
    const ended = Promise.race([
      settled,
      proc.exited.then((cause): Outcome => outcome ?? { kind: 'died', cause, lastStep }),
    ]).then((result) => {
      if (result.kind === 'died') proc.kill();
      else proc.runs.add(input.runId);
      return result;
    });
    const msg: ToTrainer = { t: 'chunk', id, input, info: taskInfoOf(ctx), restart };
    return this.exchange(proc, ctx, msg, onCancel, ended, () => {
      clearInterval(keepAlive);
      off();
    });
  }
}

/** The activity's info as a training process gets it. */
function taskInfoOf(ctx: Context): ChunkTaskInfo {
  return {
    attempt: ctx.info.attempt,
    activityId: ctx.info.activityId,
    workflowId: ctx.info.workflowExecution?.workflowId ?? '',
    taskQueue: ctx.info.taskQueue,
    heartbeatTimeoutMs: ctx.info.heartbeatTimeoutMs,
  };
}

/** The activity's cancellation, as its training process gets it. */
function cancelOf(ctx: Context, id: number): ToTrainer {
  const d = ctx.cancellationDetails;
  return {
    t: 'cancel',
    id,
    reason: String((ctx.cancellationSignal.reason as Error | undefined)?.message ?? 'CANCELLED'),
    details: {
      notFound: d?.notFound,
      cancelRequested: d?.cancelRequested,
      paused: d?.paused,
      timedOut: d?.timedOut,
      workerShutdown: d?.workerShutdown,
      reset: d?.reset,
    },
  };
}
