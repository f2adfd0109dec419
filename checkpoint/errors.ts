// Errors about checkpoints (the store's own errors are in store/interface.ts). Callers branch on the class (or
// `name`), never on message text.
import { formatProblems } from './problems';
import type { VerifyResult } from './types';

/** A checkpoint whose manifest or blobs do not verify. It is never loaded. */
export class CheckpointCorruptError extends Error {
  override readonly name = 'CheckpointCorruptError';
  constructor(
    readonly checkpointId: string,
    readonly blob: string | undefined,
    readonly reason: string,
  ) {
    super(`checkpoint ${checkpointId} is damaged: ${formatProblems([{ blob, reason }])}`);
  }
}

/**
 * The run has checkpoints but none of them verifies. Thrown by `latestValid()` instead of returning null, so a
 * run whose checkpoints are all damaged is never mistaken for a fresh run and silently trained again from step 0.
 */
export class NoValidCheckpointError extends Error {
  override readonly name = 'NoValidCheckpointError';
  constructor(
    readonly runId: string,
    readonly skipped: VerifyResult[],
  ) {
    super(
      `run ${runId} has ${skipped.length} checkpoint(s) and none verifies: ` +
        skipped.map((s) => `${s.id} (${formatProblems(s.problems)})`).join(', '),
    );
  }
}
