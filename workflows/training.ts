// The training workflow: orchestration only. Each chunk of steps is one `trainChunk` activity that
// ends by committing a checkpoint; the workflow keeps ids and small summaries, never tensors.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  type ActivityOptions,
  CancellationScope,
  CancelledFailure,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  TemporalFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alert-types';
import type { CheckpointPosition, CheckpointRef, ChunkSummary, TrainingActivities } from '../activities/types';
import { EXTRA_METRICS } from '../spec/catalog';
import { datasetLabel, modelLabel } from '../spec/labels';
import type { RunSpec } from '../spec/types';
import {
  drillSignal,
  pauseSignal,
  progressQuery,
  resumeSignal,
  setLearningRateUpdate,
  stopSignal,
} from './definitions';
import { roundRunner, roundsPerRun } from './distributed';
import { ACTIVITY_RETRY, HEARTBEAT_TIMEOUT_S, heartbeatTimeoutOf } from './policy';
import type { RunProgress, RunResult } from './progress';

export interface TrainingInput {
  spec: RunSpec;
  /** Fork source: start from another run's checkpoint. */
  from?: CheckpointRef | null;
  /** The fork source run's spec: the fork's changes to it take effect at the fork point (see spec/fork.ts). */
  sourceSpec?: RunSpec | null;
  /** Whether the namespace has our custom search attributes registered (set by the client). */
  searchAttributes?: boolean;
  /** Continue-as-new after this many chunks (default CHUNKS_PER_RUN; the server may suggest it earlier). */
  chunksPerRun?: number;
  /** State carried across continue-as-new. */
  carried?: CarriedState;
}

export interface CarriedState {
  progress: RunProgress;
  paused: boolean;
  stopRequested: boolean;
  pendingLearningRate: number | null;
  weightsSha256: string | null;
}

/** Continue-as-new after this many chunks even if the server does not suggest it yet. */
export const CHUNKS_PER_RUN = 200;
const MAX_RECORDED_RECOVERIES = 50;

const retry = ACTIVITY_RETRY;

const chunkOptions: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  // Short enough that a dead worker is noticed quickly; the trainer yields between batches so live workers always beat it.
  heartbeatTimeout: `${HEARTBEAT_TIMEOUT_S}s`,
  retry,
  // Pause/stop/cancel ask the chunk to commit at its current step and return; wait for that checkpoint.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};
const { trainChunk } = proxyActivities<TrainingActivities>(chunkOptions);

const { prepareRun, applyRetention } = proxyActivities<TrainingActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30s',
  retry,
});

// The run-failed alert: its own short retry policy (a dead webhook costs the failing run seconds, never its outcome).
const { sendAlert } = proxyActivities<AlertActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 5 },
});
/** Patch id of the run-failed alert (a new command on the failure path of runs that started before it). */
export const RUN_FAILED_ALERT_PATCH = 'alert-run-failed';
/**
 * Patch id of the bounded run-failed alert: the run waits for its delivery at most RUN_FAILED_ALERT_WAIT (a timer
 * beside the activity), so a webhook that hangs never keeps a failing run open; the activity finishes on its own.
 */
export const RUN_FAILED_ALERT_BOUNDED_PATCH = 'alert-run-failed-bounded';
export const RUN_FAILED_ALERT_WAIT = '10 seconds';
const { sendAlert: sendAlertBounded } = proxyActivities<AlertActivities>({
  startToCloseTimeout: '20 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 3 },
});

export async function trainingWorkflow(input: TrainingInput): Promise<RunResult> {
  let progress: RunProgress | null = null;
  try {
    return await runTraining(input, (p) => (progress = p));
  } catch (err) {
    // A run that fails (not one cancelled, not a continue-as-new, not a workflow-task bug that is retried) tells a
    // person, once; whatever the alert does, the run fails with its own error.
    if (err instanceof TemporalFailure && !isCancellation(err) && patched(RUN_FAILED_ALERT_PATCH)) {
      const p = progress as RunProgress | null;
      const cause = err.cause?.message ?? err.message;
      const alert = {
        kind: 'run-failed' as const,
        runId: workflowInfo().workflowId,
        checkpointId: p?.lastCheckpoint?.id ?? null,
        message: `run failed at step ${p?.step ?? 0}: ${cause}`,
        details: { step: p?.step ?? 0, totalSteps: p?.totalSteps ?? 0, error: cause.slice(0, 500) },
      };
      const notDelivered = (alertErr: unknown) =>
        log.warn('run-failed alert not delivered', { error: String(alertErr) });
      if (patched(RUN_FAILED_ALERT_BOUNDED_PATCH)) {
        await Promise.race([sendAlertBounded(alert).catch(notDelivered), sleep(RUN_FAILED_ALERT_WAIT)]);
      } else await sendAlert(alert).catch(notDelivered);
    }
    throw err;
  }
}

async function runTraining(input: TrainingInput, expose: (p: RunProgress) => void): Promise<RunResult> {
  const runId = workflowInfo().workflowId;
  const { spec } = input;
  const carried = input.carried;
  const progress: RunProgress = carried?.progress ?? {
    runId,
    status: 'starting',
    step: 0,
    totalSteps: 0,
    stepsPerEpoch: 0,
    epoch: 0,
    loss: null,
    accuracy: null,
    learningRate: spec.optimizer.learningRate,
    samplesPerSec: null,
    lastCheckpoint: null,
    lastEval: null,
    bestAccuracy: null,
    chunks: 0,
    recoveries: [],
    skippedCheckpoints: [],
    learningRateChanges: [],
    startMode: null,
    backend: null,
    continuedAsNew: 0,
    result: null,
  };
  expose(progress);
  let paused = carried?.paused ?? false;
  let stopRequested = carried?.stopRequested ?? false;
  let pendingLearningRate: number | null = carried?.pendingLearningRate ?? null;
  let weightsSha256: string | null = carried?.weightsSha256 ?? null;
  let chunkScope: CancellationScope | null = null;
  // A distributed spec trains in rounds of replicas instead of chunks; without one, the commands are unchanged.
  const chunkRunner = spec.distributed ? roundRunner(progress) : trainChunk;
  let chunksThisRun = 0;
  // Set by the chunk in which early stopping ended the run (its last: the run is done).
  let stoppedEarly = false;

  const publish = () => {
    if (!input.searchAttributes) return;
    upsertSearchAttributes({
      DurableTrainStatus: [progress.status],
      DurableTrainModel: [modelLabel(spec.model)],
      DurableTrainDataset: [datasetLabel(spec.dataset)],
      DurableTrainStep: [progress.step],
      ...(progress.bestAccuracy !== null ? { DurableTrainBestAccuracy: [progress.bestAccuracy] } : {}),
    });
  };

  setHandler(progressQuery, () => progress);
  setHandler(pauseSignal, () => {
    if (paused || progress.result) return;
    paused = true;
    progress.status = 'pausing';
    chunkScope?.cancel();
  });
  setHandler(resumeSignal, () => {
    paused = false;
  });
  // Progress only, no commands: replay-safe without a patch (a drill of this run reports its outcome here).
  setHandler(drillSignal, (drill) => {
    progress.lastDrill = drill;
  });
  setHandler(stopSignal, () => {
    if (stopRequested || progress.result) return;
    stopRequested = true;
    progress.status = 'stopping';
    chunkScope?.cancel();
  });
  setHandler(
    setLearningRateUpdate,
    (value: number) => {
      pendingLearningRate = value;
      progress.learningRateChanges.push({ step: progress.step, value });
      return value;
    },
    {
      validator: (value: number) => {
        // Float32 is what training computes with: a rate that rounds to 0 there would silently stop training.
        if (typeof value !== 'number' || !Number.isFinite(value) || !(Math.fround(value) > 0) || value > 10) {
          throw new Error(`learning rate must be a number > 0 and <= 10, got ${JSON.stringify(value)}`);
        }
        if (progress.result) throw new Error(`run ${runId} has already finished (${progress.result.status})`);
      },
    },
  );

  if (!carried) {
    const prep = await prepareRun({ runId, spec, from: input.from ?? null, sourceSpec: input.sourceSpec ?? null });
    progress.totalSteps = prep.totalSteps;
    progress.stepsPerEpoch = prep.stepsPerEpoch;
    progress.startMode = prep.mode;
    progress.skippedCheckpoints = prep.skipped;
    if (prep.start) {
      progress.lastCheckpoint = prep.start;
      progress.step = prep.start.step;
      progress.epoch = prep.start.epoch;
      if (prep.finished) {
        weightsSha256 = prep.finished.weightsSha256;
        progress.lastEval = prep.finished.lastEval;
        progress.backend = prep.finished.backend;
      }
    }
    if (prep.skipped.length) log.warn('skipped damaged checkpoints', { skipped: prep.skipped });
  }
  progress.status = paused ? 'paused' : 'running';
  publish();

  const finish = (status: RunResult['status']): RunResult => {
    progress.status = status;
    // A validation result is never reported as the test one (a run stopped before its end has no test result).
    const test = progress.lastEval?.split === 'validation' ? null : progress.lastEval;
    progress.result = {
      runId,
      status,
      step: progress.step,
      totalSteps: progress.totalSteps,
      epoch: progress.epoch,
      accuracy: test?.accuracy ?? null,
      ...testMetricsOf(test),
      loss: test?.loss ?? null,
      ...(progress.lastValidation ? { validation: progress.lastValidation } : {}),
      lastCheckpoint: progress.lastCheckpoint,
      ...(progress.bestCheckpoint ? { bestCheckpoint: progress.bestCheckpoint } : {}),
      weightsSha256,
      backend: progress.backend,
      chunks: progress.chunks,
      // Failures recovered from: a chunk retried twice after two crashes counts two.
      recoveries: progress.recoveries.reduce((n, r) => n + Math.max(1, r.attempt - 1), 0),
    };
    publish();
    return progress.result;
  };

  const record = (s: ChunkSummary) => {
    progress.step = s.step;
    progress.totalSteps = s.totalSteps;
    progress.epoch = s.epoch;
    progress.loss = s.loss;
    progress.accuracy = s.accuracy;
    progress.learningRate = s.learningRate;
    progress.samplesPerSec = s.samplesPerSec;
    progress.lastCheckpoint = s.checkpoint;
    progress.backend = s.backend;
    progress.chunks += 1;
    weightsSha256 = s.weightsSha256;
    if (s.lastEval) progress.lastEval = s.lastEval;
    if (s.bestStep != null && s.bestStep === s.checkpoint.step) progress.bestCheckpoint = s.checkpoint;
    if (s.stoppedEarly) stoppedEarly = true;
    // State only, no commands: replay-safe. Only the evaluations that choose count for "best" (never the test split
    // of a run with a validation split); histories from before validation splits have no `split` and count as before.
    for (const e of s.evals) {
      if (e.split === 'test') continue;
      if (e.split === 'validation') progress.lastValidation = e;
      if (e.accuracy !== null && (progress.bestAccuracy === null || e.accuracy > progress.bestAccuracy))
        progress.bestAccuracy = e.accuracy;
    }
    if (s.recovery) {
      progress.recoveries.push({ ...s.recovery, step: s.fromStep });
      if (progress.recoveries.length > MAX_RECORDED_RECOVERIES) progress.recoveries.shift();
    }
  };

  try {
    let done = progress.totalSteps > 0 && progress.step >= progress.totalSteps;
    while (!done) {
      if (stopRequested) return finish('stopped');
      if (paused) {
        progress.status = 'paused';
        publish();
        await condition(() => !paused || stopRequested);
        if (stopRequested) return finish('stopped');
        progress.status = 'running';
        publish();
      }
      const from: CheckpointRef | null = progress.lastCheckpoint
        ? { runId: progress.lastCheckpoint.runId, id: progress.lastCheckpoint.id }
        : null;
      const learningRateOverride = pendingLearningRate;
      const cutReason = stopRequested ? 'stop' : 'pause';
      const fromStep = progress.step;
      const scope = new CancellationScope();
      chunkScope = scope;
      let summary: ChunkSummary;
      try {
        summary = await scope.run(() =>
          chunkRunner.executeWithOptions(
            {
              ...chunkOptions,
              heartbeatTimeout: heartbeatTimeoutOf(spec),
              summary: `steps ${fromStep}..${Math.min(fromStep + spec.chunkSteps, progress.totalSteps || Infinity)}`,
            },
            [
              {
                runId,
                spec,
                from,
                // Until the fork's first commit, `from` is the source's checkpoint: the fork's changes apply there.
                ...(from && from.runId !== runId ? { sourceSpec: input.sourceSpec ?? null } : {}),
                steps: spec.chunkSteps,
                learningRateOverride,
                cutReason,
              },
            ],
          ),
        );
      } catch (err) {
        // A pause/stop that reached the activity before it could hand back a summary: try again from the same checkpoint.
        if (isCancellation(err) && !CancellationScope.current().consideredCancelled) continue;
        const rollback = rollbackAfter(err, spec, progress, from);
        if (rollback !== null) {
          pendingLearningRate = rollback;
          continue;
        }
        throw err;
      } finally {
        chunkScope = null;
      }
      if (learningRateOverride !== null && pendingLearningRate === learningRateOverride) pendingLearningRate = null;
      record(summary);
      done = summary.done;
      if (CancellationScope.current().consideredCancelled) {
        finish('cancelled');
        throw new CancelledFailure(`run ${runId} cancelled at step ${progress.step}`);
      }
      await applyRetention({ runId, spec, protect: [summary.checkpoint.id] });
      publish();
      chunksThisRun += 1;
      if (
        !done &&
        !stopRequested &&
        (workflowInfo().continueAsNewSuggested ||
          chunksThisRun >= (input.chunksPerRun ?? roundsPerRun(spec, CHUNKS_PER_RUN)))
      ) {
        progress.continuedAsNew += 1;
        await condition(() => true); // let handlers that arrived in this task run before handing over
        return await continueAsNew<typeof trainingWorkflow>({
          spec,
          searchAttributes: input.searchAttributes,
          chunksPerRun: input.chunksPerRun,
          carried: { progress, paused, stopRequested, pendingLearningRate, weightsSha256 },
        });
      }
    }
    if (stopRequested && progress.step < progress.totalSteps) return finish('stopped');
    // Only runs with early stopping reach the patch (histories from before it never set stoppedEarly).
    if (stoppedEarly && patched('early-stopping')) return finish('stopped-early');
    return finish('completed');
  } catch (err) {
    if (isCancellation(err)) finish('cancelled');
    throw err;
  }
}

/** Patch id of onNonFinite "rollback" (a chunk retried at a lower rate instead of a failed run). */
export const NONFINITE_ROLLBACK_PATCH = 'nonfinite-rollback';
const NON_FINITE = 'NonFiniteValues';
const DEFAULT_MAX_ROLLBACKS = 3;

/**
 * For a chunk that failed on a NaN or infinite value in a run with onNonFinite "rollback" and rollbacks left: the
 * halved learning rate to resume with from `from` (the last finite checkpoint: no non-finite one is ever committed),
 * recorded in the progress; null for anything else.
 */
/** The final test evaluation's metrics beside accuracy and loss: mse and mae (regression), those spec.metrics asks. */
function testMetricsOf(test: RunProgress['lastEval'] | undefined): Partial<RunResult> {
  return {
    ...(test?.mse !== undefined ? { mse: test.mse, mae: test.mae } : {}),
    ...Object.fromEntries(EXTRA_METRICS.flatMap((m) => (test?.[m] !== undefined ? [[m, test[m]]] : []))),
  };
}

function rollbackAfter(err: unknown, spec: RunSpec, progress: RunProgress, from: CheckpointRef | null): number | null {
  const cause = err instanceof ActivityFailure ? err.cause : null;
  if (!(cause instanceof ApplicationFailure) || cause.type !== NON_FINITE || spec.onNonFinite !== 'rollback')
    return null;
  const rollbacks = progress.rollbacks ?? [];
  if (rollbacks.length >= (spec.maxRollbacks ?? DEFAULT_MAX_ROLLBACKS) || !patched(NONFINITE_ROLLBACK_PATCH))
    return null;
  const d = (cause.details?.[0] ?? {}) as { step?: number | null; learningRate?: number | null };
  const rate = (d.learningRate ?? progress.learningRate ?? spec.optimizer.learningRate) / 2;
  progress.rollbacks = [...rollbacks, { step: d.step ?? null, from: from?.id ?? null, learningRate: rate }];
  progress.learningRateChanges.push({ step: progress.step, value: rate });
  log.warn('non-finite values: rolling back to the last finite checkpoint at half the learning rate', {
    step: d.step ?? null,
    from: from?.id ?? null,
    learningRate: rate,
  });
  return rate;
}

export type { CheckpointPosition };
