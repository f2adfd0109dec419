// Errors across the persist thread's boundary, as what they were: a storage failure stays a StorageUnavailableError
// (with its details and cause), a diverged snapshot a NonFiniteError, so the training thread classifies, alerts and
// retries exactly as for a persist on its own thread. Structured cloning alone keeps only an Error's message.
import { NonFiniteError } from '../training/errors';
import { CheckpointConflictError, CheckpointNotFoundError, StorageUnavailableError } from '../storage/interface';
import { CheckpointCorruptError, CheckpointSignatureError } from './errors';

export interface SentError {
  name: string;
  message: string;
  stack?: string;
  /** Own fields (code, details, key, step, ...), those that survive structured cloning. */
  fields: Record<string, unknown>;
  cause?: SentError;
}

const CLASSES: Record<string, new (...args: never[]) => Error> = {
  StorageUnavailableError,
  CheckpointConflictError,
  CheckpointNotFoundError,
  CheckpointCorruptError,
  CheckpointSignatureError,
  NonFiniteError,
  TypeError,
  RangeError,
};

const clonable = (v: unknown): boolean => {
  try {
    structuredClone(v);
    return true;
  } catch {
    return false;
  }
};

export function sendError(err: unknown, depth = 0): SentError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) if (k !== 'cause' && clonable(v)) fields[k] = v;
  return {
    name: err.name,
    message: err.message,
    stack: err.stack,
    fields,
    ...(err.cause !== undefined && depth < 4 ? { cause: sendError(err.cause, depth + 1) } : {}),
  };
}

/** The error again, of its class where it is one of the checkpoint layer's (other errors as plain Errors). */
export function reviveError(s: SentError): Error {
  const cls = CLASSES[s.name] ?? Error;
  const e = Object.create(cls.prototype) as Error;
  Object.defineProperty(e, 'message', { value: s.message, writable: true, configurable: true });
  if (s.stack) Object.defineProperty(e, 'stack', { value: s.stack, writable: true, configurable: true });
  Object.assign(e, s.fields);
  if (!(s.name in CLASSES) && s.name !== 'Error')
    Object.defineProperty(e, 'name', { value: s.name, writable: true, configurable: true });
  if (s.cause) Object.defineProperty(e, 'cause', { value: reviveError(s.cause), writable: true, configurable: true });
  return e;
}
