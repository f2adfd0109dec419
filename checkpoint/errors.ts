// Errors about checkpoints (the store's own errors are in storage/interface.ts). Callers branch on the class (or
// `name`), never on message text.
import { DurableTrainError } from '../spec/errors';
import { formatProblems } from './problems';
import type { VerifyResult } from './types';

/** A checkpoint whose manifest or blobs do not verify. It is never loaded. */
export class CheckpointCorruptError extends DurableTrainError {
  readonly code = 'damaged' as const;

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
export class NoValidCheckpointError extends DurableTrainError {
  readonly code = 'not-found' as const;

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

/**
 * A checkpoint refused because signing is on (DURABLE_TRAIN_CHECKPOINT_KEY) and its manifest is not signed, is
 * signed with a key this process does not hold, or its signature does not match. Not damage: the manager never
 * falls back past it, never counts it as valid and never deletes it (someone changed the store, or a key is
 * missing here: both need a person). See docs/checkpoint-format.md, "Signed manifests".
 */
export class CheckpointSignatureError extends DurableTrainError {
  readonly code = 'damaged' as const;

  override readonly name = 'CheckpointSignatureError';
  constructor(
    readonly runId: string,
    readonly checkpointId: string,
    readonly kind: 'missing' | 'unknown-key' | 'mismatch' | 'forged',
    readonly reason: string,
  ) {
    super(`checkpoint ${runId}:${checkpointId} ${reason}: refused (signature check, not damage). ${ADVICE[kind]}`);
  }
}

const ADVICE: Record<CheckpointSignatureError['kind'], string> = {
  // Never advice to sign: an unsigned manifest in a signed run is a forgery, and signing it would launder it. How a run
  // written before signing was on becomes signed is in docs/checkpoint-format.md, which the operator reads first.
  missing:
    'Checkpoint signing is on and every manifest must carry a signature. If the run has signed checkpoints, this ' +
    'one was written without the key: investigate the store, and move that manifest out of RUN_ID/manifests/ (the run ' +
    'then resumes from the newest checkpoint before it). A run written entirely before signing was turned on: see ' +
    '"Turning signing on for existing checkpoints" in docs/checkpoint-format.md.',
  forged:
    'Investigate the store, and move that manifest out of RUN_ID/manifests/ (the run then resumes from the newest ' +
    'signed checkpoint before it). Only if you know how it was written: --i-have-checked.',
  'unknown-key': 'Add that key (id=base64key) to DURABLE_TRAIN_CHECKPOINT_KEY to accept it.',
  mismatch:
    'Its content was changed, or written, by someone without the key: it is not loaded, and no older checkpoint ' +
    'is used in its place. Investigate the store; to go on, move that manifest out of RUN_ID/manifests/ (the run ' +
    'then resumes from the newest checkpoint before it), or fork or export an older checkpoint by id.',
};
