// The one rule for run ids and checkpoint ids. A run id is a Temporal workflow id and the first segment of
// every storage key of the run, so it must be a single safe path segment: no separators, no traversal, no
// control characters, not too long. Pure (workflow-safe); the CLI, the worker and `fork` call the same check.
import { DurableTrainError } from './errors';

/** Longest accepted id. Temporal allows 1000 characters, but ids also name directories and S3 key prefixes. */
export const MAX_ID_LENGTH = 200;

/** Letters, digits, '-', '_' and '.', never starting with '.' (so never '.' or '..'). */
export const ID_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

export const ID_RULE = `letters, digits, '-', '_' and '.' (not first), at most ${MAX_ID_LENGTH} characters`;

export type IdKind = 'run id' | 'checkpoint id';

export class InvalidIdError extends DurableTrainError {
  readonly code = 'invalid' as const;

  constructor(
    readonly kind: IdKind,
    readonly id: unknown,
    readonly reason: string,
  ) {
    super(`invalid ${kind} ${shown(id)}: ${reason}`);
    this.name = 'InvalidIdError';
  }
}

/** The id as a user can read it in one line: JSON-quoted (so a newline shows as \n), long ones shortened. */
function shown(id: unknown): string {
  // Only primitives are shown: String() of an object can itself throw ({toString: 0}) or run the caller's code.
  if (typeof id !== 'string')
    return id === null || (typeof id !== 'object' && typeof id !== 'function') ? String(id) : `(${typeof id})`;
  const s = JSON.stringify(id.length > 40 ? `${id.slice(0, 32)}...` : id);
  return id.length > 40 ? `${s} (${id.length} characters)` : s;
}

/** Why `id` is not a valid id, or null when it is. */
export function idProblem(id: unknown): string | null {
  if (typeof id !== 'string') return `must be a string, got ${id === null ? 'null' : typeof id}`;
  if (id === '') return `it is empty; use ${ID_RULE}`;
  if (id.length > MAX_ID_LENGTH) return `too long (at most ${MAX_ID_LENGTH} characters)`;
  if (id === '.' || id === '..') return `"." and ".." are not ids; use ${ID_RULE}`;
  if (ID_PATTERN.test(id)) return null;
  const sep = /[/\\]/.exec(id);
  // eslint-disable-next-line no-control-regex
  const control = /[\u0000-\u001f\u007f]/.exec(id);
  const other = /[^A-Za-z0-9._-]/.exec(id);
  const what = sep
    ? `it contains a path separator ${JSON.stringify(sep[0])}`
    : control
      ? `it contains a control character ${JSON.stringify(control[0])}`
      : other
        ? `it contains ${JSON.stringify(other[0])}`
        : `it starts with "."`;
  return `${what}; use ${ID_RULE}`;
}

function validate(kind: IdKind, id: unknown): string {
  const problem = idProblem(id);
  if (problem) throw new InvalidIdError(kind, id, problem);
  return id as string;
}

/** Returns `id` when it is a valid run id; throws InvalidIdError (`invalid run id "../x": ...`) otherwise. */
export function validateRunId(id: unknown): string {
  return validate('run id', id);
}

/** Same rule for checkpoint ids (ours look like step-000000300-1a2b3c4d). */
export function validateCheckpointId(id: unknown): string {
  return validate('checkpoint id', id);
}

export function isValidId(id: unknown): id is string {
  return idProblem(id) === null;
}
