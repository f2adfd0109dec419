// How activities fail: non-retryable failures name what is wrong with the input; everything else is retried.
import { ApplicationFailure } from '@temporalio/activity';
import { TemporalFailure } from '@temporalio/common';
import { StorageUnavailableError } from '../checkpoint';
import { errorCodeOf } from '../spec/errors';
import { isConfigError } from '../training/errors';
import { FailureTypes } from './types';

/**
 * Failure types of the catalogue below. They are not in FailureTypes (whose members the workflows' retry policy lists
 * as non-retryable): each failure carries its own retry flag.
 */
export const FailureKinds = {
  /** A NaN or infinite loss, evaluation or weight: the same numbers come out on every attempt. */
  NonFinite: 'NonFiniteValues',
  /** An error that fails the same way on every attempt (a shape that does not match, a model that does not fit). */
  Deterministic: 'DeterministicError',
  /** The backend failed in a way that can leave it unusable for every run in the process (wasm trap, out of memory). */
  BackendPoisoned: 'BackendPoisoned',
} as const;

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
    details: [{ code: err.storageCode ?? null }],
    cause: err,
  });
}

/** Messages of failures that can leave the process's tensor backend unusable: its memory may be corrupt or exhausted. */
const POISONING: RegExp[] = [
  /memory access out of bounds/i,
  /\bout of memory\b/i,
  /array buffer allocation failed/i,
  /invalid (typed )?array( buffer)? length/i,
  /cannot allocate|failed to allocate|allocation fail/i,
  /failed to grow (the )?memory/i,
  /\bunreachable\b( code| executed)?/i,
  /\bAborted\(/,
];

function chain(err: unknown): Error[] {
  const out: Error[] = [];
  for (let e: unknown = err; e instanceof Error && out.length < 8; e = e.cause) out.push(e);
  return out;
}

/**
 * Whether `err` (or one of its causes) is a failure that can leave the backend of the process that hit it unusable:
 * a WebAssembly RuntimeError (tfjs-backend-wasm's "memory access out of bounds"), an allocation failure or out of
 * memory. Such a process must not take another task (its replacement trains on); its failure names the backend, never a
 * checkpoint or the spec.
 */
export function isBackendPoisoning(err: unknown): boolean {
  return chain(err).some(
    (e) =>
      (e instanceof ApplicationFailure && e.type === FailureKinds.BackendPoisoned) ||
      e.name === 'RuntimeError' || // WebAssembly.RuntimeError: a wasm trap
      POISONING.some((re) => re.test(e.message)),
  );
}

/** Messages of tensor errors that a retry reproduces exactly: the shapes are in the spec and the data, not in luck. */
const DETERMINISTIC: RegExp[] = [
  /must match the product of shape/i,
  /has \d+ elements and the old shape/i,
  /could not be broadcast/i,
  /inner (shapes|dimensions).*must match/i,
  /incompatible shapes/i,
  /is incompatible with layer/i,
  /error when checking/i,
  /negative dimension size/i,
  /rank of .* must be|must be rank \d|must be of rank/i,
];

/** The backend failure as the activity's failure: named for what it is, retried (by another process) as any crash. */
export function backendFailure(err: unknown, what: string): ApplicationFailure {
  if (err instanceof ApplicationFailure && err.type === FailureKinds.BackendPoisoned) return err;
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return ApplicationFailure.create({
    type: FailureKinds.BackendPoisoned,
    message:
      `${what}: the tensor backend failed (${msg}); this process's backend may be unusable and is not used for ` +
      'another run. Neither the checkpoint nor the spec is blamed: a model too large for the worker is refused before ' +
      'training (DURABLE_TRAIN_MAX_MODEL_BYTES)',
    cause: err instanceof Error ? err : undefined,
    nonRetryable: false,
  });
}

/**
 * The catalogue: an activity's error as the failure it is. A NaN run, a model or data that do not fit, a tensor shape
 * that does not match fail non-retryably (a retry would fail the same way, after retraining the chunk); a backend
 * failure is named as such; Temporal failures (already typed) and anything else (maybe transient) are returned as
 * they are.
 */
export function classifyFailure(err: unknown, what: string): unknown {
  if (!(err instanceof Error)) return err;
  if (isBackendPoisoning(err)) return backendFailure(err, what);
  if (err instanceof TemporalFailure) return err;
  const code = errorCodeOf(err);
  if (code === 'diverged' || err.name === 'NonFiniteError') {
    const e = err as Error & { step?: number; learningRate?: number };
    // The details let the workflow roll back (spec.onNonFinite "rollback") at a lower rate.
    return ApplicationFailure.create({
      type: FailureKinds.NonFinite,
      message: `${what}: ${err.message}`,
      details: [{ step: e.step ?? null, learningRate: e.learningRate ?? null }],
      nonRetryable: true,
    });
  }
  if (isConfigError(err)) return nonRetryable(FailureTypes.InvalidSpec, err.message);
  if (chain(err).some((e) => DETERMINISTIC.some((re) => re.test(e.message))))
    return ApplicationFailure.create({
      type: FailureKinds.Deterministic,
      message: `${what}: ${err.message} (fails the same way on every attempt: change the model or the data)`,
      cause: err,
      nonRetryable: true,
    });
  return err;
}
