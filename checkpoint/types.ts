// The checkpoint format's data types. Nothing here knows of Temporal or tfjs: a checkpoint is a set of
// named byte arrays plus JSON state, described by a manifest that is written last (the commit point).

/** One named byte array to store, as the caller hands it to `CheckpointManager.commit`. */
export interface BlobInput {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
  /**
   * What the caller knows changed: `data` equals the content `from` (a sha256 of a blob of CommitOptions.previous,
   * same name and shape) except in these rows (indices along shape[0], ascending). Lets the commit store only those
   * rows (a row patch). Absent: unknown, the blob is stored whole unless unchanged.
   */
  changes?: { from: string; rows: Uint32Array };
}

/** Stored bytes at `<runId>/blobs/<sha256>`. */
export interface StoredPiece {
  sha256: string;
  size: number;
}

/**
 * How an incrementally stored blob is kept: a full `base` and row patches applied to it in order (each one the rows
 * that changed since the previous checkpoint). The blob's own sha256 and size are those of the result.
 */
export interface RowChain {
  base: StoredPiece;
  patches: StoredPiece[];
}

/**
 * One blob as the manifest names it, by the sha256 and size of its content. Stored at `<runId>/blobs/<sha256>`, or,
 * with `rows`, as a base and row patches (formatVersion 2).
 */
export interface ManifestBlob {
  name: string;
  dtype: string;
  shape: number[];
  sha256: string;
  size: number;
  rows?: RowChain;
}

/** Names one checkpoint anywhere: the run it belongs to and its id. */
export interface CheckpointRef {
  runId: string;
  id: string;
}

export interface Manifest {
  /** 2 when a blob is stored as a row chain (`rows`), else 1: a reader that predates chains refuses the manifest. */
  formatVersion: 1 | 2;
  id: string;
  runId: string;
  step: number;
  epoch: number;
  /** ISO 8601, given by the caller (the checkpoint layer never reads the clock for content). */
  createdAt: string;
  /** The checkpoint whose state training continued from (lineage); another run's for a fork; null for a fresh start. */
  parent: CheckpointRef | null;
  blobs: ManifestBlob[];
  /** JSON training state (rng, schedule, data position...), opaque here. */
  state: unknown;
  /** e.g. loss, accuracy, testLoss, testAccuracy. Finite numbers only. */
  metrics: Record<string, number>;
  /** spec, dataset, model. */
  fingerprints: Record<string, string>;
  backend: { name: string; version: string };
  /** 'chunk-end' | 'time' | 'pause' | 'stop' | 'cancel' | ... */
  reason?: string;
  /** Present when written with checkpoint keys (signing.ts). Not part of the id's hash: signing keeps the id. */
  signature?: ManifestSignature;
}

/** HMAC-SHA256 (hex) over the manifest's canonical form without this field, and the id of the key that made it. */
export interface ManifestSignature {
  keyId: string;
  hmacSha256: string;
}

/** What `CheckpointManager.commit` takes: the manifest minus what the manager derives, plus the bytes. */
export type CommitInput = Omit<Manifest, 'formatVersion' | 'id' | 'runId' | 'blobs'> & { blobs: BlobInput[] };

/** One row of `CheckpointManager.list()`: a manifest's headline, without blobs or state. */
export interface CheckpointSummary {
  id: string;
  runId: string;
  step: number;
  epoch: number;
  createdAt: string;
  /** Its logical size: the bytes of all its blobs. */
  sizeBytes: number;
  /**
   * The bytes it added to the store: its distinct blobs that no older checkpoint still stored references (unchanged
   * tensors, frozen layers, are stored once). Absent for an unreadable manifest.
   */
  newBytes?: number;
  metrics: Record<string, number>;
  parent: CheckpointRef | null;
  pinned: boolean;
  /** null = not verified (list without `verify`); false = damaged (see `problem`). */
  valid: boolean | null;
  /** Why it is damaged, written by formatProblems. */
  problem?: string;
  /** Refused by the signature check (valid is false, `problem` says why): not damage, never skipped or deleted. */
  untrusted?: boolean;
}

/** One thing wrong with a stored checkpoint: in a named blob, or (no `blob`) in the checkpoint as a whole. */
export interface VerificationProblem {
  blob?: string;
  reason: string;
}

/** The outcome of verifying one checkpoint: every problem found, none when `ok`. */
export interface VerifyResult {
  id: string;
  ok: boolean;
  problems: VerificationProblem[];
}

/**
 * Independent retention policies (orbax style): a checkpoint survives if ANY policy keeps it, or it is
 * pinned, or protected, or it is the newest valid checkpoint (a run must always stay resumable).
 * A policy with no rule at all keeps everything.
 */
export interface RetentionPolicy {
  /** Keep the newest N checkpoints that verify (damaged ones are not counted). */
  keepLatest?: number;
  /** Keep the K best by a metric, over every stored checkpoint (so it is right after restarts). */
  keepBest?: { k: number; metric: string; mode: 'max' | 'min' };
  /** Keep every checkpoint whose step is a multiple of N. */
  keepEverySteps?: number;
}

export interface RetentionResult {
  /** Checkpoint ids whose manifests were deleted. */
  deleted: string[];
  /** Checkpoint ids that survive. */
  kept: string[];
  /** Unreferenced blobs removed by the garbage collection that follows. */
  blobsDeleted: number;
  /** Set when blob garbage collection was skipped for safety (e.g. an unreadable manifest remains). */
  gcSkipped?: string;
}
