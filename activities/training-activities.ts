// Temporal adapters: join training/ (tfjs) and checkpoint/ (storage) with heartbeats, cancellation
// and failure types. Nothing here returns tensors or bytes: ids and small summaries only.
import { ApplicationFailure, CancelledFailure, Context, log } from '@temporalio/activity';
import type { RunSpec } from '../spec/types';
import { builtinTrainRows, choiceMetric, stepCounts } from '../spec/helpers';
import type { WatchMetric } from '../spec/catalog';
import { idProblem } from '../spec/ids';
import { validateSpec, SpecError } from '../spec/validate';
import { distributedProblem } from '../spec/schema';
import { DatasetError } from '../training/data';
import { loadTaskData } from '../training/task-data';
import { Trainer, type TrainerState } from '../training';
import { isConfigError } from '../training/errors';
import { initBackend } from '../training/backend';
import {
  CheckpointManager,
  checkpointKeysFromEnv,
  formatProblems,
  NoValidCheckpointError,
  type CheckpointKeys,
  type CheckpointStore,
} from '../checkpoint';
import {
  FailureTypes,
  type ChunkSummary,
  type PrepareRunInput,
  type PrepareRunResult,
  type RetentionInput,
  type TrainChunkInput,
  type TrainingActivities,
} from './types';
import { ChunkCommits, positionOf } from './chunk/commits';
import { restoreTrainer } from './chunk/restore';
import { forkPlanOf, isDamagedOrMissing, resolveChunkStart, rootedAt } from './chunk/start';
import { ChunkHeartbeats, summarize, trainWithHeartbeats } from './chunk/train';
import { WarmTrainers } from './chunk/warm-cache';
import { createDrillActivities } from './drill';
import { ChunkCurves } from './chunk/curves';
import { classifyFailure, isBackendPoisoning, nonRetryable, storageUnavailable } from './failures';
import { specHash } from './fingerprint';
import { TrainingMetrics } from './metrics';
import { probeWritable, storeCache } from './storage';
import { createReplicaActivities } from './replica';
import type { ReplicaActivities } from './replica-types';
import { createAlertActivities } from './alerts';
import type { AlertActivities } from './alert-types';
import { RunAlerts } from './chunk/alerts';
import { AlertSink, positiveIntFromEnv, webhookFromEnv } from '../telemetry/alerts';
import type { Restart } from './trainer-process/protocol';
import type { TrainerSupervisor } from './trainer-process/supervisor';

const choiceMetricOf = (spec: RunSpec, metric: WatchMetric) => {
  const { name, mode } = choiceMetric(spec, metric);
  return { metric: name, mode };
};

/**
 * The checkpoint early stopping names as the run's best (at the step of its best validation evaluation, recorded in
 * the newest checkpoint's state): retention keeps it whatever the other rules say.
 */
async function earlyStoppingBest(manager: CheckpointManager): Promise<string[]> {
  const list = await manager.list();
  const newest = list.reduce<(typeof list)[number] | null>((a, c) => (a === null || c.step > a.step ? c : a), null);
  if (!newest) return [];
  const state = (await manager.readManifest(newest.id)).state as TrainerState;
  const bestStep = state.metrics?.earlyStopping?.bestStep;
  return bestStep == null ? [] : list.filter((c) => c.step === bestStep).map((c) => c.id);
}

export interface ActivityDeps {
  /** Directory that relative file:// storage paths resolve against (default: the worker's cwd). */
  baseDir?: string;
  /** How many runs' trainers to keep warm in memory (default 2). */
  warmRuns?: number;
  /** Called between a commit's blobs and its manifest (crash tests kill the process here). */
  beforeManifest?: (step: number, runId: string) => void | Promise<void>;
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
}

/** Training examples of the run's data: a built-in's from the spec, a file's by reading it (cached for training). */
async function trainRows(spec: RunSpec): Promise<number> {
  const rows = builtinTrainRows(spec);
  if (rows !== null) return rows;
  // Reading and decoding a large file takes longer than the heartbeat timeout; the decoding runs on a thread of its
  // own (training/data/decode-thread.ts), so the event loop is free to say the activity is alive meanwhile.
  const ctx = Context.current();
  const keepAlive = setInterval(() => ctx.heartbeat(), 5_000);
  try {
    return (await loadTaskData(spec)).train.n;
  } catch (err) {
    if (err instanceof DatasetError) throw nonRetryable(FailureTypes.InvalidSpec, err.message);
    throw err;
  } finally {
    clearInterval(keepAlive);
  }
}

/** The spec as validated; a spec that does not validate is a non-retryable InvalidSpec failure. */
function checkSpec(raw: RunSpec): RunSpec {
  try {
    return validateSpec(raw);
  } catch (err) {
    if (err instanceof SpecError) throw nonRetryable(FailureTypes.InvalidSpec, err.message);
    throw err;
  }
}

export function createActivities(deps: ActivityDeps = {}): TrainingActivities & AlertActivities & ReplicaActivities {
  const warm = new WarmTrainers(deps.warmRuns ?? 2);
  const metrics = deps.metrics ?? new TrainingMetrics();
  const sink = deps.alerts ?? new AlertSink({ url: webhookFromEnv(), counters: metrics });
  const runAlerts = new RunAlerts(sink, {
    saveFailures: positiveIntFromEnv('DURABLE_TRAIN_ALERT_SAVE_FAILURES', 3),
    staleSeconds: positiveIntFromEnv('DURABLE_TRAIN_ALERT_STALE_SECONDS', 900),
  });
  const openStoreOf = storeCache(deps.baseDir);
  // Parsed once, at worker start: a malformed key fails the worker, not its first chunk.
  const keys = deps.checkpointKeys ?? checkpointKeysFromEnv();

  const storeFor = (spec: RunSpec): CheckpointStore => openStoreOf(spec.checkpoint.storage);
  const managerFor = (spec: RunSpec, runId: string) =>
    new CheckpointManager(storeFor(spec), runId, { beforeManifest: deps.beforeManifest, keys });

  const activities = {
    ...createReplicaActivities({ managerFor, checkSpec }),
    ...createAlertActivities(sink),
    // Recovery drills: a fresh trainer each, never `warm`; the same signing keys as training.
    ...createDrillActivities({
      baseDir: deps.baseDir,
      keys,
      onReport: (r) => (r.verified ? metrics.drillPassed() : metrics.drillFailed()),
    }),

    async prepareRun(input: PrepareRunInput): Promise<PrepareRunResult> {
      const spec = checkSpec(input.spec);
      // The run id becomes a path segment and an object key: the one id rule, named, instead of a storage error.
      const badId =
        idProblem(input.runId) ?? (input.from ? (idProblem(input.from.runId) ?? idProblem(input.from.id)) : null);
      if (badId) throw nonRetryable(FailureTypes.InvalidSpec, `invalid run or checkpoint id: ${badId}`);
      const hash = specHash(spec);
      const rows = await trainRows(spec);
      // A file dataset's size is known only now: the distributed block's fit to it is checked here.
      const distProblem = spec.distributed ? distributedProblem(spec.distributed, rows, spec.batchSize) : null;
      if (distProblem)
        throw nonRetryable(
          FailureTypes.InvalidSpec,
          `invalid spec: distributed.${distProblem.field}: ${distProblem.message}`,
        );
      const { stepsPerEpoch, totalSteps } = stepCounts(spec, rows);
      await probeWritable(storeFor(spec), input.runId, spec.checkpoint.storage);
      Context.current().heartbeat();
      const base = { totalSteps, stepsPerEpoch, specHash: hash };
      const own = managerFor(spec, input.runId);
      const from = input.from ?? null;
      if (from && from.runId === input.runId) {
        throw nonRetryable(FailureTypes.InvalidSpec, `run ${input.runId} cannot be forked into itself`);
      }

      // A run that already has checkpoints continues from them: restarting never starts over.
      const latest = await own.latestValid().catch((err: unknown) => {
        if (err instanceof NoValidCheckpointError) {
          // Checkpoints exist but none verifies: refuse to silently start over.
          throw nonRetryable(
            FailureTypes.NoValidCheckpoint,
            `run ${input.runId} has checkpoints but none is intact: ${err.message}`,
          );
        }
        throw storageUnavailable(err, `cannot list the checkpoints of run ${input.runId}`);
      });
      const skipped = (latest?.skipped ?? []).map((v) => ({ id: v.id, reason: formatProblems(v.problems) }));
      if (latest && skipped.length) {
        metrics.recovered(input.runId, 'damaged-fallback');
        runAlerts.damagedFallback(input.runId, skipped[0].id, latest.manifest.id, skipped[0].reason);
      }
      if (latest) {
        // A fork never writes into another run: an id whose checkpoints are not this fork's own is refused.
        if (from && !(await rootedAt(own, latest.manifest, from))) {
          throw nonRetryable(
            FailureTypes.InvalidSpec,
            `run ${input.runId} already exists with checkpoints of its own; a fork of ${from.runId}:${from.id} needs a new run id`,
          );
        }
        const fp = latest.manifest.fingerprints.spec;
        if (fp && fp !== hash) {
          log.warn('run continues with a changed spec', { runId: input.runId, checkpoint: latest.manifest.id });
        }
        let finished: PrepareRunResult['finished'] = null;
        if (latest.manifest.step >= totalSteps) {
          // Already trained to the end: report the final numbers from that checkpoint rather than train again.
          const backend = await initBackend();
          const loaded = await own.load(latest.manifest.id);
          const trainer = await restoreTrainer(spec, backend, loaded.manifest, loaded.blobs);
          const st = trainer.state;
          finished = {
            weightsSha256: trainer.weightsSha256(),
            lastEval: st.metrics.evals[st.metrics.evals.length - 1] ?? null,
            backend: backend.name,
          };
          trainer.dispose();
        }
        return { ...base, start: positionOf(latest.manifest), mode: 'resume', skipped, finished };
      }
      if (from) {
        const plan = forkPlanOf(input.sourceSpec, spec);
        const src = managerFor(spec, from.runId);
        const check = await src.verify(from.id).catch((err: unknown) => {
          if (isDamagedOrMissing(err)) return { ok: false, problems: [{ reason: (err as Error).message }] };
          throw storageUnavailable(err, `cannot read fork source ${from.runId}:${from.id}`);
        });
        if (!check.ok) {
          throw nonRetryable(
            FailureTypes.CheckpointNotFound,
            `fork source ${from.runId}:${from.id} is missing or damaged: ${formatProblems(check.problems)}`,
          );
        }
        const loaded = await src.load(from.id);
        if (loaded.manifest.step >= totalSteps) {
          throw nonRetryable(
            FailureTypes.NothingToTrain,
            `fork source ${from.runId}:${from.id} is at step ${loaded.manifest.step} and the fork's spec trains ${totalSteps} ` +
              `steps: nothing left to train (raise epochs to train on)`,
          );
        }
        // Check the fork's spec against the checkpoint now (model, optimizer slots, data), not at its first chunk.
        const trainer = await restoreTrainer(spec, await initBackend(), loaded.manifest, loaded.blobs, plan ?? {});
        trainer.dispose();
        return { ...base, start: positionOf(loaded.manifest), mode: 'fork', skipped, finished: null };
      }
      // Build the model on the data once now, so a model that does not fit the data fails before any training.
      const probe = await Trainer.create(spec).catch((err: unknown) => {
        if (isConfigError(err)) throw nonRetryable(FailureTypes.InvalidSpec, (err as Error).message);
        throw err;
      });
      probe.dispose();
      return { ...base, start: null, mode: 'fresh', skipped, finished: null };
    },

    async trainChunk(input: TrainChunkInput): Promise<ChunkSummary> {
      const ctx = Context.current();
      const spec = checkSpec(input.spec);
      const hash = specHash(spec);
      const backend = await initBackend();
      const manager = managerFor(spec, input.runId);
      const t0 = Date.now();
      const { trainer, source, parent, recovery } = await resolveChunkStart({
        runId: input.runId,
        spec,
        specHash: hash,
        from: input.from,
        sourceSpec: input.sourceSpec,
        attempt: ctx.info.attempt,
        restart: deps.restartOf?.(input.runId) ?? null,
        backend,
        manager,
        managerOf: (runId) => managerFor(spec, runId),
        warm,
        metrics,
        alerts: runAlerts,
      });
      try {
        const fromStep = trainer.state.step;
        if (input.learningRateOverride != null) trainer.setLearningRate(input.learningRateOverride);
        const curves = await ChunkCurves.open({
          store: storeFor(spec),
          runId: input.runId,
          spec,
          parent,
          fromStep,
          restored: source !== 'warm',
        });
        const commits = new ChunkCommits({
          runId: input.runId,
          manager,
          trainer,
          backend,
          specHash: hash,
          parent,
          everySeconds: spec.checkpoint.everySeconds ?? 0,
          metrics,
          alerts: runAlerts,
          curves,
          keepAlive: () => beats.again(),
        });
        const beats = new ChunkHeartbeats(ctx, () => commits.lastCommitted);
        const { result, samplesPerSec } = await trainWithHeartbeats(ctx, beats, trainer, commits, input, spec, metrics);

        const details = ctx.cancellationDetails;
        if (ctx.cancellationSignal.aborted && (details?.notFound || details?.timedOut || details?.reset)) {
          // The server gave this attempt up (another attempt owns the run now): commit nothing more.
          await commits.drain();
          throw new CancelledFailure('attempt superseded');
        }
        const cut = ctx.cancellationSignal.aborted && !result.done;
        const reason = !cut
          ? 'chunk-end'
          : details?.workerShutdown
            ? 'worker-shutdown'
            : ((await deps.cutReasonOf?.(input.runId).catch(() => null)) ?? input.cutReason ?? 'cancel');
        const final = await commits.commit(reason);
        const summary = summarize(trainer, result, {
          checkpoint: positionOf(final),
          fromStep,
          cut,
          samplesPerSec,
          backend: backend.name,
          commits: commits.count,
          source,
          recovery,
          trainMs: Date.now() - t0 - commits.ms,
          commitMs: commits.ms,
        });
        // A run that finished or was paused, stopped or cancelled trains no more here: drop its series and watches.
        runAlerts.chunkEnded(input.runId, trainer.done || cut);
        if (trainer.done || cut) metrics.runEnded(input.runId);
        if (trainer.done) trainer.dispose();
        else warm.put(input.runId, { trainer, checkpointId: final.id, specHash: hash });
        return summary;
      } catch (err) {
        trainer.dispose();
        throw err;
      }
    },

    async applyRetention(input: RetentionInput): Promise<{ deleted: string[] }> {
      const spec = checkSpec(input.spec);
      const ck = spec.checkpoint;
      const manager = managerFor(spec, input.runId);
      const protect = [...input.protect, ...(spec.earlyStopping ? await earlyStoppingBest(manager) : [])];
      const res = await manager
        .applyRetention(
          {
            keepLatest: ck.keepLatest,
            keepBest: ck.keepBest ? { k: ck.keepBest.k, ...choiceMetricOf(spec, ck.keepBest.metric) } : undefined,
            keepEverySteps: ck.keepEverySteps,
          },
          protect,
        )
        .catch((err: unknown) => {
          throw storageUnavailable(err, `retention of run ${input.runId} failed`);
        });
      return { deleted: res.deleted };
    },
  };

  // Around every chunk attempt: the run is in flight here (its series never expire meanwhile); a chunk that fails for
  // good fails the run, which then trains no more here (its series and watches go).
  catalogueFailures(activities, warm, runAlerts);
  const supervisor = deps.supervisor;
  const trainChunk = supervisor
    ? (input: TrainChunkInput) => supervisor.trainChunk(Context.current(), input, deps.cutReasonOf)
    : activities.trainChunk;
  activities.trainChunk = async (input) => {
    metrics.chunkInFlight(input.runId, true);
    try {
      return await trainChunk(input);
    } catch (err) {
      if (err instanceof ApplicationFailure && err.nonRetryable) {
        runAlerts.chunkEnded(input.runId, true);
        metrics.runEnded(input.runId);
      }
      throw err;
    } finally {
      metrics.chunkInFlight(input.runId, false);
    }
  };
  return activities;
}

/**
 * Every failure of the training activities goes through the catalogue (failures.ts): what fails the same way again is
 * not retried, and a backend failure is named as one (the warm trainers live on that backend and go with it). Storage
 * failing in prepareRun or applyRetention counts toward 'save-failing' as a failed commit does (trainChunk counts its
 * own, where it knows the checkpoint it was on).
 */
function catalogueFailures(activities: TrainingActivities, warm: WarmTrainers, runAlerts: RunAlerts): void {
  const classified = (what: string) => (err: unknown) => {
    const failure = classifyFailure(err, what);
    if (isBackendPoisoning(failure)) {
      warm.clear();
      log.error('tensor backend failed; this process must not train another run', { error: String(err) });
    }
    throw failure;
  };
  const countStorage = (runId: string, checkpointId: string | null) => (err: unknown) => {
    if (err instanceof ApplicationFailure && err.type === FailureTypes.StorageUnavailable)
      runAlerts.storageFailed(runId, checkpointId, err.message);
    throw err;
  };
  const { prepareRun, applyRetention, trainChunk } = activities;
  activities.prepareRun = (input) =>
    prepareRun(input)
      .catch(classified(`run ${input.runId}`))
      .catch(countStorage(input.runId, null));
  activities.applyRetention = (input) =>
    applyRetention(input).catch(countStorage(input.runId, input.protect[0] ?? null));
  activities.trainChunk = (input) => trainChunk(input).catch(classified(`run ${input.runId}`));
}
