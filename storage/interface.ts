// The byte-level store contract: where the manager's keys live, the three errors a store may throw, and the
// single-object reader (datasets, model files). Backends (fs.ts, s3.ts, ...) import only this module (and
// request.ts); the scheme table (index.ts) imports the backends.
import { DurableTrainError } from '../spec/errors';

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

/**
 * Errors: a key that does not exist in a healthy store is CheckpointNotFoundError; a write-once key holding other
 * bytes is CheckpointConflictError; every failure of the storage itself (unreachable, refused, full, not a
 * directory, timed out) is StorageUnavailableError. Nothing else escapes a store except programming errors
 * (an invalid key).
 */
export interface CheckpointStore {
  readonly url: string;
  /**
   * True where writes take views of shared memory (a SharedArrayBuffer) as they are: a checkpoint may then read the
   * optimizer's host arrays in place (Trainer.snapshot's `lend`). Unset: they are copied first.
   */
  readonly readsSharedMemory?: boolean;
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
export class CheckpointNotFoundError extends DurableTrainError {
  readonly code = 'not-found' as const;

  override readonly name = 'CheckpointNotFoundError';
  constructor(
    readonly key: string,
    message = `not found: ${key}`,
  ) {
    super(message);
  }
}

/** A write-once key (a manifest) already holds different bytes. */
export class CheckpointConflictError extends DurableTrainError {
  readonly code = 'conflict' as const;

  override readonly name = 'CheckpointConflictError';
  constructor(readonly key: string) {
    super(`refusing to overwrite ${key}: it already exists with different content`);
  }
}

export interface StorageFailureDetails {
  /** The store operation: fs 'read' | 'write' | 'list' | 'stat' | 'delete'; s3 'GET' | 'PUT' | 'HEAD' | 'LIST' | 'DELETE'. */
  op: string;
  key: string;
  /** Attempts made (the S3 store retries transient failures itself; the fs store tries once). */
  attempts: number;
  /**
   * true: the failure may heal without anyone changing anything (network, timeout, 5xx, disk full, I/O error,
   * store directory missing or replaced): retry later, with an alert. false: it needs an operator (permissions,
   * read-only filesystem, wrong credentials, missing bucket, a request the server refuses): fail now.
   */
  retryable: boolean;
  /** errno code (ENOTDIR, ENOSPC, ...) or S3 error code (AccessDenied, NoSuchBucket, TimeoutError, ...). */
  code?: string;
  /** HTTP status, for S3. */
  status?: number;
}

/**
 * The storage itself failed: it could not be reached, refused the operation, or is not in a usable state. Says
 * nothing about any checkpoint: callers must never treat it as "damaged" or "missing", never fall back past it
 * and never start a run over because of it. `retryable` says whether waiting can help.
 */
export class StorageUnavailableError extends DurableTrainError {
  readonly code = 'unavailable' as const;

  override readonly name = 'StorageUnavailableError';
  constructor(
    message: string,
    readonly details: StorageFailureDetails,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  /** The store's own code: errno (ENOTDIR, ENOSPC, ...) or the server's (AccessDenied, NoSuchBucket, ...). */
  get storageCode(): string | undefined {
    return this.details.code;
  }
  get retryable(): boolean {
    return this.details.retryable;
  }
}

/** The old name of StorageUnavailableError (same class). */
export { StorageUnavailableError as CheckpointStoreError };

/** Filesystem errors that need an operator; every other errno is worth retrying. */
const FS_NEEDS_OPERATOR = new Set(['EACCES', 'EPERM', 'EROFS']);

/** An errno error from node (fs, net): has a string code and a syscall. */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException;
  return e instanceof Error && typeof e.code === 'string' && typeof e.syscall === 'string';
}

/**
 * Wraps a failed filesystem call on store `url` as StorageUnavailableError, retryable unless it needs an operator.
 * `found` overrides what is reported (e.g. the store root that is not a directory, rather than the key's path).
 */
export function fsUnavailable(
  url: string,
  op: string,
  key: string,
  err: unknown,
  found?: { why: string; code?: string },
): StorageUnavailableError {
  const code = found ? found.code : (err as NodeJS.ErrnoException)?.code;
  return new StorageUnavailableError(
    `checkpoint storage ${url} is unavailable: ${op} ${key}: ${found?.why ?? (err as Error)?.message ?? String(err)}`,
    { op, key, attempts: 1, retryable: !FS_NEEDS_OPERATOR.has(code ?? ''), code },
    { cause: err },
  );
}

export interface StoredObjectStat {
  size: number;
  /** Changes when the content may have: mtime and inode for files, ETag (generation) and date in object stores. */
  version: string;
}

/**
 * One object named by a URL (a dataset file, a model file): what `openObject` returns. Errors as for stores: a
 * missing object (or a missing bucket, where the server cannot tell them apart) is CheckpointNotFoundError, every
 * other failure StorageUnavailableError (with `code` EACCES/EPERM/EISDIR, or the server's code and HTTP status).
 */
export interface StoredObject {
  readonly url: string;
  stat(): Promise<StoredObjectStat>;
  /** The whole object, or its first `limit` bytes. */
  read(limit?: number): Promise<Uint8Array>;
  /**
   * The whole object as a stream of chunks, for large files: nothing but the chunk in hand is held, so a reader that
   * copies them into one buffer of the stat's size holds the bytes once. Errors as for read, thrown by the iteration.
   * Cloud stores pin the version they saw first and resume a body that fails or stalls from the byte where it
   * stopped; a version replaced meanwhile is StorageUnavailableError with code ObjectChanged, never a mix of two.
   */
  stream(): AsyncIterable<Uint8Array>;
}

/** A refusal of the credentials (HTTP 401/403, or a permission error on a file). */
export function isAccessDenied(err: unknown): boolean {
  if (!(err instanceof StorageUnavailableError)) return false;
  const { status, code } = err.details;
  return status === 401 || status === 403 || ['EACCES', 'EPERM', 'AccessDenied', 'Forbidden'].includes(code ?? '');
}
