// Timeouts and retries of the training activities: plain data, shared by the workflow and the benchmarks that
// measure them (bench/recovery.ts). Tuned from bench/recovery.ts, see docs/benchmarks.md:
// - heartbeat timeout 10 s: the longest gap between heartbeats of a healthy worker measured 1.03 s (heartbeats
//   are throttled to 1 s; a CNN step is ~0.25 s on wasm), so a live worker is never taken for dead, and a killed
//   one is noticed within 10 s;
// - retry after 0.5 s, doubling to at most 10 s: one crash costs heartbeat timeout + 0.5 s + restore (~0.7 s);
//   a crash loop still backs off, and every crash of a killed worker already waits out the heartbeat timeout.
import { ActivityCancellationType, type ActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import { FailureTypes } from '../activities/types';

export const HEARTBEAT_TIMEOUT_S = 10;

/**
 * The heartbeat timeout (ms) of a run's training activities: the spec's `heartbeatTimeoutSeconds`, or the default above
 * (a spec written before the field existed has none, so its runs keep the timeout they always had).
 */
export const heartbeatTimeoutOf = (spec: { heartbeatTimeoutSeconds?: number }): number =>
  (spec.heartbeatTimeoutSeconds ?? HEARTBEAT_TIMEOUT_S) * 1000;

export const ACTIVITY_RETRY: RetryPolicy = {
  initialInterval: '500ms',
  backoffCoefficient: 2,
  maximumInterval: '10s',
  maximumAttempts: 30,
  // StorageUnavailable (S3 down, disk full) is worth retrying; every other failure type names bad input.
  nonRetryableErrorTypes: Object.values(FailureTypes).filter((t) => t !== FailureTypes.StorageUnavailable),
};

/**
 * The options of the activities that train (a chunk, a replica's part of a round). A pause, stop or cancel asks them
 * to commit at their current step and return: the workflow waits for that checkpoint (WAIT_CANCELLATION_COMPLETED).
 * The heartbeat timeout here is the default; each call sets the run's own (heartbeatTimeoutOf).
 */
export const TRAINING_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: `${HEARTBEAT_TIMEOUT_S}s`,
  retry: ACTIVITY_RETRY,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};
