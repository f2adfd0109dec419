// Where dataset bytes come from: any object URL the storage table opens (file:// relative to a base directory,
// s3://BUCKET/KEY, ...), with the size known (stat / HEAD) before anything is read, so an oversized file is refused
// before it costs memory.
import {
  CheckpointNotFoundError,
  isAccessDenied,
  OBJECT_URL_FORMS,
  openObject,
  StorageUnavailableError,
  StorageUrlError,
  type StoredObject,
} from '../../storage';
import { createHash } from 'node:crypto';
import { DatasetError } from './errors';

export const DEFAULT_MAX_DATASET_BYTES = 1024 * 1024 * 1024;

export interface Source {
  /** The URL as written in the spec. */
  url: string;
  /** The spec field naming it (dataset.path, dataset.label). */
  field: string;
  /** For messages: the URL, and for a relative file:// path the file it resolved to. */
  where: string;
  local: boolean;
  object: StoredObject;
}

export interface SourceInfo {
  size: number;
  /** Changes when the content may have: mtime for files, ETag and date in object stores. */
  version: string;
}

export function resolveSource(url: unknown, baseDir: string, field: string): Source {
  if (typeof url !== 'string' || url === '') {
    throw new DatasetError(field, `expected a URL (${OBJECT_URL_FORMS}), got ${JSON.stringify(url)}`);
  }
  let object: StoredObject;
  try {
    object = openObject(url, baseDir);
  } catch (err) {
    if (err instanceof StorageUrlError) {
      throw new DatasetError(
        field,
        err.notAUrl ? `${JSON.stringify(url)} is not a URL: use ${OBJECT_URL_FORMS}` : `${url} ${err.problem}`,
      );
    }
    throw err;
  }
  const local = object.url.startsWith('file://');
  const where = !local || object.url === url ? url : `${url} (${object.url.slice('file://'.length)})`;
  return { url, field, where, local, object };
}

/** The size limit: the option, else $DURABLE_TRAIN_MAX_DATASET_BYTES, else 1 GiB. */
export function maxDatasetBytes(option?: number): number {
  if (option !== undefined) {
    if (!Number.isFinite(option) || option <= 0) throw new Error(`maxBytes must be a positive number, got ${option}`);
    return option;
  }
  const env = process.env.DURABLE_TRAIN_MAX_DATASET_BYTES;
  if (env === undefined || env === '') return DEFAULT_MAX_DATASET_BYTES;
  const n = Number(env);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`DURABLE_TRAIN_MAX_DATASET_BYTES=${env} is not a positive number`);
  return n;
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[u]} (${n} bytes)`;
}

const RAISE_HINT =
  'raise the limit with DURABLE_TRAIN_MAX_DATASET_BYTES=<bytes> in the environment of the CLI and of every worker, ' +
  'if the workers have that much memory to spare';

export function checkSize(src: Source, size: number, maxBytes: number): void {
  if (size > maxBytes) {
    throw new DatasetError(
      src.field,
      `${src.url} is ${formatBytes(size)}, larger than the dataset limit of ${formatBytes(maxBytes)}; ${RAISE_HINT}`,
    );
  }
}

/** Refuses a dataset whose decoded arrays a worker would struggle to hold (float32 values, about twice over). */
export function checkMemory(field: string, what: string, values: number, maxBytes: number, atLeast = false): void {
  const need = values * 4 * 2;
  if (need > maxBytes) {
    throw new DatasetError(
      field,
      `${what} decodes to ${atLeast ? 'at least ' : ''}${values} float32 values, about ${formatBytes(need)} of worker memory, more than the ` +
        `dataset limit of ${formatBytes(maxBytes)}; use trainLimit/testLimit or fewer features, or ${RAISE_HINT}`,
    );
  }
}

/** Storage errors as dataset errors: what an operator must fix is a DatasetError; an outage a plain, retryable error. */
function failure(src: Source, err: unknown): Error {
  if (err instanceof CheckpointNotFoundError) return new DatasetError(src.field, `${src.where} does not exist`);
  if (isAccessDenied(err)) {
    return new DatasetError(
      src.field,
      src.local
        ? `${src.where} is not readable (permission denied)`
        : `${src.where} is not readable with these credentials (access denied)`,
    );
  }
  if (err instanceof StorageUnavailableError && err.storageCode === 'EISDIR')
    return new DatasetError(src.field, `${src.where} is a directory, not a file`);
  // Anything else (network, server) may pass: a plain error, so the caller may retry.
  return new Error(`${src.field}: reading ${src.where} failed: ${(err as Error)?.message ?? String(err)}`);
}

export async function statSource(src: Source): Promise<SourceInfo> {
  try {
    return await src.object.stat();
  } catch (err) {
    throw failure(src, err);
  }
}

/** The whole object, or its first `limit` bytes. */
export async function readSource(src: Source, limit?: number): Promise<Uint8Array> {
  try {
    return await src.object.read(limit);
  } catch (err) {
    throw failure(src, err);
  }
}

/**
 * The whole object streamed into one buffer of the stat's `size` (grown if the object grew since) and hashed on the
 * way: the raw bytes are held once, where a whole-object read holds the received chunks and their concatenation
 * together. Refuses an object that grows past `maxBytes` while being read.
 */
export async function readSourceHashed(
  src: Source,
  size: number,
  maxBytes: number,
): Promise<{ bytes: Uint8Array; sha256: string }> {
  const hash = createHash('sha256');
  let buf = new Uint8Array(size);
  let n = 0;
  try {
    for await (const chunk of src.object.stream()) {
      if (n + chunk.byteLength > buf.byteLength) {
        checkSize(src, n + chunk.byteLength, maxBytes);
        const grown = new Uint8Array(Math.min(maxBytes, Math.max(2 * buf.byteLength, n + chunk.byteLength)));
        grown.set(buf.subarray(0, n));
        buf = grown;
      }
      buf.set(chunk, n);
      n += chunk.byteLength;
      hash.update(chunk);
    }
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw failure(src, err);
  }
  return { bytes: n === buf.byteLength ? buf : buf.subarray(0, n), sha256: hash.digest('hex') };
}
