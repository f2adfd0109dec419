// The one list of alert kinds: the sink (telemetry/alerts.ts), the sendAlert activity's check and the workflows'
// types all take it from here. Plain data, safe in the workflow sandbox.

/** What happened. One alert per (kind, run, checkpoint) until the condition clears: duplicates are suppressed. */
export const ALERT_KINDS = [
  'save-failing',
  'checkpoint-stale',
  'damaged-fallback',
  'drill-failed',
  'run-failed',
] as const;

export type AlertKind = (typeof ALERT_KINDS)[number];
