// The one way verification problems are written, in logs, errors, CLI output and recovery reasons.
import type { VerificationProblem } from './types';

/**
 * `blob <name>: <reason>` for a blob, the bare reason for the checkpoint as a whole (manifest, not found), joined
 * by '; '. e.g. `blob dense/kernel: sha256 mismatch: expected 3fa9c2d1e0b7…, found 0c1d2e3f4a5b…`.
 */
export function formatProblems(problems: readonly VerificationProblem[]): string {
  return problems.map((p) => (p.blob !== undefined ? `blob ${p.blob}: ${p.reason}` : p.reason)).join('; ');
}
