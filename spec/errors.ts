// The one base of every error durable-train throws on purpose. Its `code` says what kind of problem it is, and each
// edge maps the code once: the CLI to its exit code (cli/program.ts), the activities to a failure type
// (activities/failures.ts). A new error class picks a code here and needs no new branch in either place.

/**
 * What kind of problem an error is:
 * - `invalid`: the input (spec, id, model, data, key, URL) must change; retrying cannot help;
 * - `not-found`: a named thing (checkpoint, object) does not exist;
 * - `damaged`: stored bytes do not verify (hash, signature); they are never loaded;
 * - `conflict`: a write-once thing already holds something else;
 * - `unavailable`: a service or backend cannot be used now; waiting or another machine may help;
 * - `diverged`: training produced NaN or infinite numbers; a retry recomputes the same ones;
 * - `timeout`: one attempt took too long (retried by the caller's policy);
 * - `command`: a CLI command's own refusal, which carries its exit code.
 */
export const ERROR_CODES = [
  'invalid',
  'not-found',
  'damaged',
  'conflict',
  'unavailable',
  'diverged',
  'timeout',
  'command',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export abstract class DurableTrainError extends Error {
  abstract readonly code: ErrorCode;
}

/** The code of a durable-train error, or undefined for any other error. */
export function errorCodeOf(err: unknown): ErrorCode | undefined {
  return err instanceof DurableTrainError ? err.code : undefined;
}
