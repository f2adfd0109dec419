// The alert activity's contract, shared by the workflows that raise alerts (training, drill) and the worker that
// delivers them. Workflow-safe: types only.

import type { AlertKind } from '../telemetry/alert-kinds';
export type { AlertKind };

export interface AlertInput {
  kind: AlertKind;
  runId: string;
  /** The checkpoint the alert is about, when there is one. */
  checkpointId?: string | null;
  /** One line a person can act on. */
  message: string;
  /** Small structured fields for the receiver (no secrets, no tensors). */
  details?: Record<string, string | number | boolean | null>;
}

export interface AlertResult {
  /** The sink accepted it (or there is no sink configured: then false with reason 'no-sink'). */
  delivered: boolean;
  /** A duplicate of an alert already delivered. */
  suppressed: boolean;
  reason?: string;
}

/** Implemented in activities/alerts.ts; workflows call it with its own retry policy so it never blocks training. */
export interface AlertActivities {
  sendAlert(input: AlertInput): Promise<AlertResult>;
}
