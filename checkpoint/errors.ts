// Error types of the checkpoint layer. Callers branch on the class (or `name`), never on message text.
import type { VerifyResult } from './types';

/** A key (blob, manifest, pin) or a checkpoint that does not exist. */
export class CheckpointNotFoundError extends Error {
  override readonly name = 'CheckpointNotFoundError';
  constructor(
    readonly key: string,
    message = `not found: ${key}`,
  ) {
    super(message);
  }
}

/** A checkpoint whose manifest or blobs do not verify. It is never loaded. */
export class CheckpointCorruptError extends Error {
  override readonly name = 'CheckpointCorruptError';
  constructor(
    readonly checkpointId: string,
    readonly blob: string | undefined,
    readonly reason: string,
  ) {
    super(`checkpoint ${checkpointId} is damaged: ${blob !== undefined ? `blob ${blob}: ` : ''}${reason}`);
  }
}

/**
 * The run has checkpoints but none of them verifies. Thrown by `latestValid()` instead of returning null,
 * so a damaged store is never mistaken for a fresh run that may start over (USERS #1, #6).
 */
export class NoValidCheckpointError extends Error {
  override readonly name = 'NoValidCheckpointError';
  constructor(
    readonly runId: string,
    readonly skipped: VerifyResult[],
  ) {
    super(
      `run ${runId} has ${skipped.length} checkpoint(s) and none verifies: ` +
        skipped
          .map((s) => `${s.id} (${s.problems.map((p) => (p.blob ? `${p.blob}: ` : '') + p.reason).join('; ')})`)
          .join(', '),
    );
  }
}

/** A write-once key (a manifest) already holds different bytes. */
export class CheckpointConflictError extends Error {
  override readonly name = 'CheckpointConflictError';
  constructor(readonly key: string) {
    super(`refusing to overwrite ${key}: it already exists with different content`);
  }
}

/** A storage request that failed for good (after bounded retries, or at once when retrying cannot help). */
export class CheckpointStoreError extends Error {
  override readonly name = 'CheckpointStoreError';
  constructor(
    message: string,
    readonly details: { op: string; key: string; attempts: number; retryable: boolean; code?: string; status?: number },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  get code(): string | undefined {
    return this.details.code;
  }
}
