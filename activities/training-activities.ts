// Temporal adapters: join training/ (tfjs) and checkpoint/ (storage) with heartbeats, cancellation
// and failure types. Nothing here returns tensors or bytes: ids and small summaries only. Each activity is a function
// of (deps, input) in its own file (prepare-run.ts, train-chunk.ts, apply-retention.ts, replica.ts, alerts.ts,
// drill.ts); createActivities builds the shared deps once and binds them, with the failure catalogue around them.
import { ApplicationFailure, Context, log } from '@temporalio/activity';
import { CheckpointManager, checkpointKeysFromEnv, type CheckpointStore } from '../checkpoint';
import type { RunSpec } from '../spec/types';
import { AlertSink, positiveIntFromEnv, webhookFromEnv } from '../telemetry/alerts';
import type { AlertActivities } from './alert-types';
import { createAlertActivities } from './alerts';
import { applyRetention } from './apply-retention';
import { RunAlerts } from './chunk/alerts';
import { WarmTrainers } from './chunk/warm-cache';
import { createDrillActivities } from './drill';
import type { DrillActivities } from './drill-types';
import { classifyFailure, isBackendPoisoning } from './failures';
import { TrainingMetrics } from './metrics';
import { prepareRun } from './prepare-run';
import { createReplicaActivities } from './replica';
import type { ReplicaActivities } from './replica-types';
import { storeCache } from './storage';
import { trainChunk } from './train-chunk';
import { checkSpec, type ActivityDeps, type TrainingDeps } from './training-deps';
import { FailureTypes, type TrainChunkInput, type TrainingActivities } from './types';

export type { ActivityDeps } from './training-deps';

export function createActivities(
  deps: ActivityDeps = {},
): TrainingActivities & AlertActivities & ReplicaActivities & DrillActivities {
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
  const persistThread = deps.persistThread ?? process.env.DURABLE_TRAIN_PERSIST_THREAD !== '0';
  const managerFor = (spec: RunSpec, runId: string) =>
    new CheckpointManager(storeFor(spec), runId, {
      beforeManifest: deps.beforeManifest,
      ...(persistThread ? { thread: { storage: spec.checkpoint.storage, baseDir: deps.baseDir } } : {}),
      keys,
      retentionVerify: spec.checkpoint.retentionVerify,
    });
  deps.heldRounds?.bind(managerFor);
  const d: TrainingDeps = {
    warm,
    metrics,
    runAlerts,
    storeFor,
    managerFor,
    cutReasonOf: deps.cutReasonOf,
    restartOf: deps.restartOf,
    useBackend: deps.useBackend,
    chooseBackend: deps.chooseBackend,
  };

  const activities = {
    ...createReplicaActivities({ managerFor, checkSpec, heldRounds: deps.heldRounds }),
    ...createAlertActivities(sink),
    // Recovery drills: a fresh trainer each, never `warm`; the same signing keys as training.
    ...createDrillActivities({
      baseDir: deps.baseDir,
      keys,
      useBackend: deps.useBackend,
      onReport: (r) => (r.verified ? metrics.drillPassed() : metrics.drillFailed()),
    }),
    prepareRun: (input) => prepareRun(d, input),
    trainChunk: (input) => trainChunk(d, input),
    applyRetention: (input) => applyRetention(d, input),
  } satisfies TrainingActivities & AlertActivities & ReplicaActivities & DrillActivities;

  // Around every chunk attempt: the run is in flight here (its series never expire meanwhile); a chunk that fails for
  // good fails the run, which then trains no more here (its series and watches go).
  catalogueFailures(activities, warm, runAlerts);
  const supervisor = deps.supervisor;
  const chunk = supervisor
    ? (input: TrainChunkInput) => supervisor.trainChunk(Context.current(), input, deps.cutReasonOf)
    : activities.trainChunk;
  activities.trainChunk = async (input) => {
    metrics.chunkInFlight(input.runId, true);
    try {
      return await chunk(input);
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
  // Drills (and, when asked, replicas) train too: in training processes, on the run's backend, off this process's
  // event loop, and a crash of one costs its process, which the supervisor replaces at once.
  if (supervisor) activities.runDrill = (input) => supervisor.runDrill(Context.current(), input);
  if (supervisor && deps.replicasInProcesses)
    activities.trainReplica = (input) => supervisor.trainReplica(Context.current(), input);
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
