// The byte-level store contract: where the manager's keys live, and the errors a store may throw.
// Stores (fs.ts, s3.ts) import only this module; the factory (open.ts) imports the stores.

/** Temp files are named `.tmp.<name>.<pid>.<random>` beside their target; list() never shows them. */
export const TEMP_PREFIX = '.tmp.';

/** Rejects keys that could escape the store root or that name a temp file. Keys are '/'-separated relative paths. */
export function assertKey(key: string): void {
  const parts = typeof key === 'string' ? key.split('/') : [];
  if (
    !parts.length ||
    parts.some((p) => p === '' || p === '.' || p === '..' || p.startsWith(TEMP_PREFIX) || p.includes('\\'))
  ) {
    throw new Error(`invalid store key ${JSON.stringify(key)}`);
  }
}

export interface StoredObjectInfo {
  key: string;
  size: number;
  /** Last modification time, ms since the epoch (store clock). */
  mtimeMs: number;
}

export interface WriteAtomicOptions {
  /**
   * Write-once: if the key already holds the same bytes this is a no-op, if it holds different bytes the write
   * fails with CheckpointConflictError. On S3 this is a conditional put (If-None-Match: *). Used for manifests.
   */
  ifAbsent?: boolean;
}

export interface CheckpointStore {
  readonly url: string;
  /** Content-addressed write: may skip when the key already holds exactly these bytes. Durable before return. */
  writeBlob(key: string, data: Uint8Array): Promise<void>;
  /** Commit point. fs: temp file + fsync + rename + fsync dir (after syncing earlier blob writes); s3: one put. */
  writeAtomic(key: string, data: Uint8Array, opts?: WriteAtomicOptions): Promise<void>;
  /** Throws CheckpointNotFoundError when the key does not exist. */
  read(key: string): Promise<Uint8Array>;
  exists(key: string): Promise<boolean>;
  /** Every key under the prefix (recursive), sorted; never temp files. A healthy store without them gives []. */
  list(prefix: string): Promise<string[]>;
  /** Like list, with sizes and modification times (lets blob GC spare blobs of commits still in flight). */
  listDetailed(prefix: string): Promise<StoredObjectInfo[]>;
  /** Idempotent: deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Optional one-pass content-addressed write: stores `data` at `<prefix><sha256>` (hashing while writing) and
   * returns the sha256. Same durability as writeBlob. Stores without it get hash-then-writeBlob.
   */
  writeContentAddressed?(prefix: string, data: Uint8Array): Promise<string>;
  /** Optional one-pass read + sha256 (hashing while reading). Throws CheckpointNotFoundError like read. */
  readHashing?(key: string): Promise<{ data: Uint8Array; sha256: string }>;
  /** Removes temp files left by crashed writes that are older than `olderThanMs`; returns how many. */
  sweepTemp?(prefix: string, olderThanMs: number): Promise<number>;
}

/** A key (blob, manifest, pin) or a checkpoint that does not exist, in a store that answered. */
export class CheckpointNotFoundError extends Error {
  override readonly name = 'CheckpointNotFoundError';
  constructor(
    readonly key: string,
    message = `not found: ${key}`,
  ) {
    super(message);
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
