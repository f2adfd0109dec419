// The training workflow: orchestration only. Each chunk of steps is one `trainChunk` activity that ends by committing a
// checkpoint; the workflow keeps ids and small summaries, never tensors. The loop lives here; the run's state and
// handlers in run-state.ts, one chunk in chunk.ts, one distributed round in round.ts.
import {
  CancellationScope,
  CancelledFailure,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  proxyActivities,
  sleep,
  TemporalFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alert-types';
import type { CheckpointPosition, TrainingActivities } from '../activities/types';
import { runChunk } from './chunk';
import { ACTIVITY_RETRY } from './policy';
import type { RunResult } from './progress';
import { roundsPerRun } from './round';
import { RunState, type TrainingInput } from './run-state';

export type { CarriedState, TrainingInput } from './run-state';
export { NONFINITE_ROLLBACK_PATCH } from './chunk';

/** Continue-as-new after this many chunks even if the server does not suggest it yet. */
export const CHUNKS_PER_RUN = 200;

const { prepareRun, applyRetention } = proxyActivities<TrainingActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30s',
  retry: ACTIVITY_RETRY,
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
  let state: RunState | null = null;
  try {
    state = new RunState(input);
    return await runTraining(state);
  } catch (err) {
    // A run that fails (not one cancelled, not a continue-as-new, not a workflow-task bug that is retried) tells a
    // person, once; whatever the alert does, the run fails with its own error.
    if (err instanceof TemporalFailure && !isCancellation(err) && patched(RUN_FAILED_ALERT_PATCH)) {
      const p = state?.progress ?? null;
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

/** Prepare (a new run only), then chunks until done, stopped, cancelled or handed over by continue-as-new. */
async function runTraining(state: RunState): Promise<RunResult> {
  const { runId, spec, progress, input } = state;
  state.registerHandlers();
  if (!input.carried) {
    state.recordStart(
      await prepareRun({ runId, spec, from: input.from ?? null, sourceSpec: input.sourceSpec ?? null }),
    );
  }
  progress.status = state.paused ? 'paused' : 'running';
  state.publish();

  try {
    let done = progress.totalSteps > 0 && progress.step >= progress.totalSteps;
    while (!done) {
      if (state.stopRequested) return state.finish('stopped');
      if (state.paused) {
        progress.status = 'paused';
        state.publish();
        await condition(() => !state.paused || state.stopRequested);
        if (state.stopRequested) return state.finish('stopped');
        progress.status = 'running';
        state.publish();
      }
      const summary = await runChunk(state);
      if (!summary) continue;
      state.record(summary);
      done = summary.done;
      if (CancellationScope.current().consideredCancelled) {
        state.finish('cancelled');
        throw new CancelledFailure(`run ${runId} cancelled at step ${progress.step}`);
      }
      await applyRetention({ runId, spec, protect: [summary.checkpoint.id] });
      state.publish();
      state.chunksThisRun += 1;
      if (
        !done &&
        !state.stopRequested &&
        (workflowInfo().continueAsNewSuggested ||
          state.chunksThisRun >= (input.chunksPerRun ?? roundsPerRun(spec, CHUNKS_PER_RUN)))
      ) {
        progress.continuedAsNew += 1;
        await condition(() => true); // let handlers that arrived in this task run before handing over
        return await continueAsNew<typeof trainingWorkflow>({
          spec,
          searchAttributes: input.searchAttributes,
          chunksPerRun: input.chunksPerRun,
          carried: state.carried(),
        });
      }
    }
    if (state.stopRequested && progress.step < progress.totalSteps) return state.finish('stopped');
    // Only runs with early stopping reach the patch (histories from before it never set stoppedEarly).
    if (state.stoppedEarly && patched('early-stopping')) return state.finish('stopped-early');
    return state.finish('completed');
  } catch (err) {
    if (isCancellation(err)) state.finish('cancelled');
    throw err;
  }
}

export type { CheckpointPosition };
