// How activities fail: non-retryable failures name what is wrong with the input; everything else is retried.
import { ApplicationFailure } from '@temporalio/activity';
import { FailureTypes } from './types';

export function nonRetryable(type: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/**
 * The storage itself failed (unreachable, not a directory, full, 5xx...), as opposed to a checkpoint that is damaged
 * or missing. Retried with the activity's backoff: a brief outage must not end a run, nor make it skip intact
 * checkpoints. An ApplicationFailure passes through unchanged.
 */
export function storageUnavailable(err: unknown, what: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const e = err as Error & { code?: string };
  return ApplicationFailure.create({
    type: FailureTypes.StorageUnavailable,
    message: `${what}: storage unavailable: ${e?.message ?? String(err)}`,
    details: [{ code: e?.code ?? null }],
    cause: err instanceof Error ? err : undefined,
  });
}
