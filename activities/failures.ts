// How activities fail: non-retryable failures name what is wrong with the input; everything else is retried.
import { ApplicationFailure } from '@temporalio/activity';
import { StorageUnavailableError } from '../checkpoint';
import { FailureTypes } from './types';

export function nonRetryable(type: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/**
 * A storage failure (StorageUnavailableError: unreachable, not a directory, full, 5xx...) as the activity's failure:
 * type StorageUnavailable, retried with the activity's backoff, so a brief outage neither ends a run nor makes it skip
 * intact checkpoints. Anything else (an ApplicationFailure, a programming error) is returned unchanged, to be thrown
 * as it is: only the storage layer decides what is a storage failure.
 */
export function storageUnavailable(err: unknown, what: string): unknown {
  if (!(err instanceof StorageUnavailableError)) return err;
  return ApplicationFailure.create({
    type: FailureTypes.StorageUnavailable,
    message: `${what}: storage unavailable: ${err.message}`,
    details: [{ code: err.code ?? null }],
    cause: err,
  });
}
