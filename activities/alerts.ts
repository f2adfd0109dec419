// The sendAlert activity: workflows (training's run-failed, the drill's drill-failed) raise alerts through it, with a
// retry policy of their own, so a dead webhook is retried by Temporal and never fails or blocks the run. One delivery
// attempt per activity attempt; duplicates of an open alert are suppressed by the worker's sink.
import { ApplicationFailure } from '@temporalio/activity';
import type { AlertSink } from '../telemetry/alerts';
import { ALERT_KINDS } from '../telemetry/alert-kinds';
import type { AlertActivities, AlertInput, AlertResult } from './alert-types';
import { nonRetryable } from './failures';
import { FailureTypes } from './types';

/** The failure type of a delivery that may succeed later (webhook down, 5xx): retried by the caller's policy. */
export const ALERT_DELIVERY_FAILED = 'AlertDeliveryFailed';

function checkAlert(input: AlertInput): void {
  const bad = (field: string, want: string) =>
    nonRetryable(
      FailureTypes.InvalidSpec,
      `sendAlert: ${field} must be ${want}, got ${JSON.stringify(input?.[field as keyof AlertInput])}`,
    );
  if (!(ALERT_KINDS as readonly string[]).includes(input?.kind)) throw bad('kind', `one of ${ALERT_KINDS.join(', ')}`);
  if (typeof input.runId !== 'string' || !input.runId) throw bad('runId', 'a non-empty string');
  if (typeof input.message !== 'string' || !input.message) throw bad('message', 'a non-empty string');
  if (input.checkpointId != null && typeof input.checkpointId !== 'string')
    throw bad('checkpointId', 'a string or null');
}

export function createAlertActivities(sink: AlertSink): AlertActivities {
  return {
    async sendAlert(input: AlertInput): Promise<AlertResult> {
      checkAlert(input);
      const r = await sink.send(input, { attempts: 1 });
      if (r.delivered || r.suppressed || !sink.url) {
        return { delivered: r.delivered, suppressed: r.suppressed, ...(r.reason ? { reason: r.reason } : {}) };
      }
      const reason = r.reason ?? 'not delivered';
      // A webhook that refuses the request (4xx) will refuse it again: give up now, visibly.
      if (r.permanent)
        throw nonRetryable(ALERT_DELIVERY_FAILED, `alert ${input.kind} for run ${input.runId}: ${reason}`);
      throw ApplicationFailure.retryable(
        `alert ${input.kind} for run ${input.runId}: ${reason}`,
        ALERT_DELIVERY_FAILED,
      );
    },
  };
}
