// Failures across the process boundary: the training process sends what the worker needs to fail the activity the
// same way (type, retryability, details), never a stack of objects.
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import type { WireError } from './protocol';

export function toWire(err: unknown): WireError {
  if (err instanceof CancelledFailure) return { name: err.name, message: err.message, cancelled: true };
  if (err instanceof ApplicationFailure) {
    return {
      name: err.name,
      message: err.message,
      type: err.type ?? null,
      nonRetryable: err.nonRetryable ?? false,
      details: (err.details ?? []) as unknown[],
    };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name, message: e.message, stack: e.stack };
}

/** The failure to throw from the activity: what the training process threw, as the worker would have thrown it. */
export function fromWire(w: WireError): Error {
  if (w.cancelled) return new CancelledFailure(w.message);
  if (w.type !== undefined) {
    return ApplicationFailure.create({
      type: w.type ?? undefined,
      message: w.message,
      nonRetryable: w.nonRetryable ?? false,
      details: w.details ?? [],
    });
  }
  // A plain error (a TypeError, a tfjs error): retryable, typed by its name, as Temporal types a thrown Error.
  const e = ApplicationFailure.create({ type: w.name, message: w.message, nonRetryable: false });
  if (w.stack) e.stack = w.stack;
  return e;
}
