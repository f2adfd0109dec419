// Byte-level stores: where the manager's keys live. Keys are '/'-separated relative paths.
import * as path from 'node:path';
import { FsCheckpointStore } from './fs-store';
import { S3CheckpointStore } from './s3-store';

export { FsCheckpointStore } from './fs-store';
export { S3CheckpointStore, type S3StoreOptions } from './s3-store';
export { CheckpointNotFoundError } from './errors';
export { assertKey, TEMP_PREFIX } from './keys';

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
  /** Every key under the prefix (recursive), sorted; never temp files. */
  list(prefix: string): Promise<string[]>;
  /** Idempotent: deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Like list, with sizes and modification times (lets blob GC spare blobs of commits still in flight). */
  listDetailed?(prefix: string): Promise<StoredObjectInfo[]>;
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

/**
 * Opens a store from a URL:
 * - `file://relative/path` (relative to baseDir, default cwd) or `file:///absolute/path`
 * - `s3://bucket/prefix`, with DURABLE_TRAIN_S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
 *   from the environment (path-style addressing; without the key variables the SDK's default chain is used).
 *   DURABLE_TRAIN_S3_TIMEOUT_MS and DURABLE_TRAIN_S3_MAX_ATTEMPTS tune the per-request timeout and retries.
 */
export function openStore(url: string, baseDir: string = process.cwd()): CheckpointStore {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/.exec(url ?? '');
  if (!m)
    throw new Error(`checkpoint storage ${JSON.stringify(url)} is not a URL: use file://PATH or s3://BUCKET/PREFIX`);
  const scheme = m[1].toLowerCase();
  const rest = m[2];
  if (scheme === 'file') {
    if (!rest) throw new Error(`checkpoint storage ${url} has no path: use file://PATH or file:///ABSOLUTE/PATH`);
    return new FsCheckpointStore(rest.startsWith('/') ? rest : path.resolve(baseDir, rest));
  }
  if (scheme === 's3') {
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? '' : rest.slice(slash + 1);
    if (!bucket) throw new Error(`checkpoint storage ${url} has no bucket: use s3://BUCKET/PREFIX`);
    const env = process.env;
    const num = (name: string): number | undefined => {
      const v = env[name];
      if (v === undefined || v === '') return undefined;
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${v} is not a positive number`);
      return n;
    };
    return new S3CheckpointStore({
      bucket,
      prefix,
      endpoint: env.DURABLE_TRAIN_S3_ENDPOINT || undefined,
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
      credentials:
        env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
          ? {
              accessKeyId: env.AWS_ACCESS_KEY_ID,
              secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
              sessionToken: env.AWS_SESSION_TOKEN || undefined,
            }
          : undefined,
      requestTimeoutMs: num('DURABLE_TRAIN_S3_TIMEOUT_MS'),
      maxAttempts: num('DURABLE_TRAIN_S3_MAX_ATTEMPTS'),
    });
  }
  throw new Error(`checkpoint storage ${url}: unknown scheme ${scheme}:// (supported: file://, s3://)`);
}
