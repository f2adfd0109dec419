// The drill workflow: rehearses a recovery of a run (restore a checkpoint in a fresh trainer, replay to the next
// stored checkpoint, compare bit for bit) without touching the run. It tells a running run the outcome (a signal
// its progress records), raises an alert when the drill fails, and, when a Schedule started it and the run has
// ended, removes that schedule: drills of a finished run have nothing left to watch over.
import { getExternalWorkflowHandle, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alert-types';
import type { DrillActivities, DrillInput, DrillReport, DrillResult, LastDrill } from '../activities/drill-types';
import { drillSignal } from './definitions';
import { ACTIVITY_RETRY } from './policy';

const { runDrill } = proxyActivities<DrillActivities>({
  // The replay trains at most the steps between two stored checkpoints; it heartbeats every step.
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '60s',
  retry: ACTIVITY_RETRY,
});

// An alert or a schedule removal must never fail (or hold up) the drill's result: a few quick tries, then give up.
const { sendAlert } = proxyActivities<AlertActivities>({
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 3 },
});
const { removeDrillSchedule } = proxyActivities<DrillActivities>({
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 3 },
});

/** The run's progress line for a drill. */
export function lastDrillOf(drillId: string, r: DrillReport): LastDrill {
  const d = r.differences[0];
  return {
    drillId,
    at: r.at,
    verified: r.verified,
    checkpointId: r.checkpoint?.id ?? null,
    comparedId: r.compared?.id ?? null,
    stepsReplayed: r.stepsReplayed,
    problem: d ? `${d.checkpointId} ${d.name}: ${d.reason}` : null,
  };
}

export async function drillWorkflow(input: DrillInput): Promise<DrillResult> {
  const drillId = workflowInfo().workflowId;
  const report = await runDrill(input);
  const result: DrillResult = { ...report, drillId, runEnded: false, alerted: null, scheduleRemoved: false };

  // A signal to a closed run fails: that is how the drill learns the run has ended (no query, no extra activity).
  try {
    await getExternalWorkflowHandle(input.runId).signal(drillSignal, lastDrillOf(drillId, report));
  } catch (err) {
    result.runEnded = true;
    log.info('run is not running; its progress does not record the drill', { runId: input.runId, error: String(err) });
  }

  if (!report.verified) {
    const d = report.differences[0];
    const checkpointId = d?.checkpointId ?? report.compared?.id ?? null;
    try {
      const sent = await sendAlert({
        kind: 'drill-failed',
        runId: input.runId,
        checkpointId,
        message:
          `recovery drill ${drillId} of run ${input.runId} failed: restoring ${report.checkpoint?.id ?? '-'} and ` +
          `replaying steps ${report.fromStep}..${report.toStep} does not reproduce ${report.compared?.id ?? '-'}` +
          (d ? ` (${d.checkpointId} ${d.name}: ${d.reason})` : ''),
        details: {
          drillId,
          restored: report.checkpoint?.id ?? null,
          compared: report.compared?.id ?? null,
          fromStep: report.fromStep,
          toStep: report.toStep,
          differences: report.differences.length,
          blob: d?.name ?? null,
        },
      });
      result.alerted = sent.delivered;
    } catch (err) {
      result.alerted = false;
      log.warn('drill alert not delivered', { runId: input.runId, error: String(err) });
    }
  }

  if (input.scheduleId && result.runEnded) {
    try {
      result.scheduleRemoved = await removeDrillSchedule({ scheduleId: input.scheduleId });
    } catch (err) {
      log.warn('could not remove the drill schedule of an ended run', {
        scheduleId: input.scheduleId,
        error: String(err),
      });
    }
  }
  return result;
}
