// Google Cloud Storage store (gs://BUCKET/PREFIX) on the JSON API through @google-cloud/storage. Credentials are
// Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's, or the metadata server);
// STORAGE_EMULATOR_HOST points the client at an emulator (fake-gcs-server in the tests). Requests run through
// request.ts (deadline per attempt, our retries; the library's are off). Uploads send the MD5 of the bytes and the
// stored object's MD5 is compared with it; the manifest is published with ifGenerationMatch: 0, so it is written
// once or not at all.
//
// Errors: a 404 for an object of an existing bucket (checked once per store) is CheckpointNotFoundError; a missing bucket, a refusal (401,
// 403) and other 4xx are StorageUnavailableError with retryable false; timeouts, network errors, 5xx, 408 and 429
// are retried, then StorageUnavailableError with retryable true.
import { createHash } from 'node:crypto';
import { Storage, type Bucket, type File } from '@google-cloud/storage';
import {
  assertKey,
  CheckpointConflictError,
  CheckpointNotFoundError,
  StorageUnavailableError,
  type CheckpointStore,
  type StoredObject,
  type StoredObjectInfo,
  type WriteAtomicOptions,
} from './interface';
import {
  isNetworkFailure,
  retryableStatus,
  retryPolicy,
  runRequest,
  streamRequest,
  type Attempt,
  type RetryOptions,
  type RetryPolicy,
  type Verdict,
  positiveEnv,
} from './request';
import type { StorageLocation } from './url';

export interface GcsStoreOptions extends RetryOptions {
  bucket: string;
  /** Object name prefix inside the bucket ('' = bucket root). */
  prefix?: string;
  /** The JSON API endpoint (an emulator's URL); default: Google's, or STORAGE_EMULATOR_HOST. */
  apiEndpoint?: string;
  projectId?: string;
  /** A service account key file; default: Application Default Credentials. */
  keyFilename?: string;
  /** writeBlob skips an upload only when the identical object is younger than this (see S3StoreOptions). */
  dedupMaxAgeMs?: number;
  /** Objects per listing page (the API's maximum is 1000). */
  pageSize?: number;
}

interface GcsErrorLike {
  code?: number | string;
  message?: string;
  errors?: Array<{ reason?: string; message?: string }>;
  response?: { status?: number };
}

const md5 = (data: Uint8Array) => createHash('md5').update(data).digest('base64');

/** What one failed GCS attempt means. A 404 names the object unless the message says the bucket is missing. */
function classifyGcs(err: unknown, op: string): Verdict {
  const e = err as GcsErrorLike;
  const status = typeof e?.code === 'number' ? e.code : e?.response?.status;
  const reason = e?.errors?.[0]?.reason;
  // A 404 on a listing or an upload can only mean the bucket; on a read, Google's message says which is missing.
  const bucketMissing =
    status === 404 &&
    (op === 'LIST' || op === 'PUT' || (/bucket/i.test(e?.message ?? '') && !/object/i.test(e?.message ?? '')));
  if (status === 404 && (op === 'GET' || op === 'HEAD') && !bucketMissing) return { notFound: true, retryable: false };
  const code = bucketMissing ? 'NoSuchBucket' : (reason ?? (typeof e?.code === 'string' ? e.code : undefined));
  const retryable = retryableStatus(status) || (status === undefined && isNetworkFailure(err));
  return { retryable, code, status };
}

export class GcsCheckpointStore implements CheckpointStore {
  readonly url: string;
  readonly bucketName: string;
  readonly prefix: string;
  readonly bucket: Bucket;
  private readonly policy: RetryPolicy;
  private readonly dedupMaxAgeMs: number;
  private readonly pageSize: number;
  private bucketSeen = false;

  constructor(opts: GcsStoreOptions) {
    if (!opts.bucket) throw new Error('GcsCheckpointStore needs a bucket');
    this.bucketName = opts.bucket;
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.url = `gs://${this.bucketName}${this.prefix ? `/${this.prefix}` : ''}`;
    this.policy = retryPolicy(opts);
    this.dedupMaxAgeMs = opts.dedupMaxAgeMs ?? 30 * 60_000;
    this.pageSize = opts.pageSize ?? 1000;
    // The library takes STORAGE_EMULATOR_HOST, when set, as its JSON API base URL verbatim (so only in the form
    // http://HOST:PORT/storage/v1), ahead of apiEndpoint; our apiEndpoint (from that variable, either form) is used
    // instead, with the variable hidden while the client is built (synchronously).
    const emulator = process.env.STORAGE_EMULATOR_HOST;
    if (opts.apiEndpoint) delete process.env.STORAGE_EMULATOR_HOST;
    try {
      const storage = new Storage({
        apiEndpoint: opts.apiEndpoint?.replace(/\/+$/, '').replace(/\/storage\/v1$/, ''),
        projectId: opts.projectId,
        keyFilename: opts.keyFilename,
        retryOptions: { autoRetry: false }, // retries are ours, with our deadline per attempt
      });
      this.bucket = storage.bucket(this.bucketName);
    } finally {
      if (emulator !== undefined) process.env.STORAGE_EMULATOR_HOST = emulator;
    }
  }

  private file(key: string): File {
    assertKey(key);
    return this.bucket.file(this.prefix ? `${this.prefix}/${key}` : key);
  }

  private async request<T>(op: string, key: string, bytes: number, fn: (a: Attempt) => Promise<T>): Promise<T> {
    try {
      return await runRequest(this.policy, { op, key, bytes, backend: 'gcs', url: this.url }, classifyGcs, fn);
    } catch (err) {
      if (err instanceof CheckpointNotFoundError) await this.assertBucket(op, key);
      throw err;
    }
  }

  /**
   * A 404 for an object is only "not found" in a bucket that exists: Google says which one is missing, but emulators
   * do not, so the bucket is looked up once (per store) before the first "not found" is believed.
   */
  private async assertBucket(op: string, key: string): Promise<void> {
    if (this.bucketSeen) return;
    const [exists] = await runRequest(
      this.policy,
      { op: 'HEAD', key: '', bytes: 0, backend: 'gcs', url: this.url },
      classifyGcs,
      () => this.bucket.exists(),
    );
    if (!exists) {
      throw new StorageUnavailableError(
        `gcs ${op} ${this.url}/${key} failed: NoSuchBucket (HTTP 404): bucket ${this.bucketName} does not exist`,
        { op, key, attempts: 1, retryable: false, code: 'NoSuchBucket', status: 404 },
      );
    }
    this.bucketSeen = true;
  }

  async writeBlob(key: string, data: Uint8Array): Promise<void> {
    const digest = md5(data);
    const head = await this.head(key);
    if (
      head &&
      head.size === data.byteLength &&
      head.md5 === digest &&
      Date.now() - head.mtimeMs < this.dedupMaxAgeMs
    ) {
      return;
    }
    await this.put(key, data, digest, false);
  }

  async writeAtomic(key: string, data: Uint8Array, opts: WriteAtomicOptions = {}): Promise<void> {
    const digest = md5(data);
    if (!opts.ifAbsent) return this.put(key, data, digest, false);
    try {
      await this.put(key, data, digest, true);
    } catch (err) {
      // 412: the object exists. After a retry this is usually our own first attempt that did land.
      if ((err as StorageUnavailableError).details?.status !== 412) throw err;
      const existing = await this.read(key);
      if (!Buffer.from(existing).equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) {
        throw new CheckpointConflictError(key);
      }
    }
  }

  private async put(key: string, data: Uint8Array, digest: string, ifGenerationMatch0: boolean): Promise<void> {
    const file = this.file(key);
    const stored = await this.request('PUT', key, data.byteLength, async () => {
      await file.save(Buffer.from(data.buffer, data.byteOffset, data.byteLength), {
        resumable: false,
        validation: false, // we compare the stored MD5 below, the same way on every server
        metadata: { contentType: 'application/octet-stream', md5Hash: digest },
        ...(ifGenerationMatch0 ? { preconditionOpts: { ifGenerationMatch: 0 } } : {}),
      });
      return file.metadata as { md5Hash?: string };
    });
    if (stored.md5Hash && stored.md5Hash !== digest) {
      throw new StorageUnavailableError(
        `gcs PUT ${this.url}/${key}: server stored different bytes (md5 ${stored.md5Hash})`,
        { op: 'PUT', key, attempts: 1, retryable: true },
      );
    }
  }

  async read(key: string): Promise<Uint8Array> {
    return this.get(key);
  }

  private async get(key: string, limit?: number): Promise<Uint8Array> {
    const file = this.file(key);
    if (limit === 0) return this.head(key).then((h) => (h ? new Uint8Array(0) : this.missing(key)));
    return this.request('GET', key, 0, async () => {
      const [buf] = await file.download({
        validation: false, // the manifest's sha256 verifies every blob
        ...(limit === undefined ? {} : { start: 0, end: limit - 1 }),
      });
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    });
  }

  private missing(key: string): never {
    throw new CheckpointNotFoundError(key, `not found: ${this.url}/${key}`);
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== null;
  }

  private async head(key: string): Promise<{ size: number; md5: string; mtimeMs: number; generation: string } | null> {
    const file = this.file(key);
    try {
      const md = await this.request('HEAD', key, 0, async () => (await file.getMetadata())[0]);
      return {
        size: Number(md.size ?? -1),
        md5: String(md.md5Hash ?? ''),
        mtimeMs: md.updated ? Date.parse(String(md.updated)) : 0,
        generation: String(md.generation ?? ''),
      };
    } catch (err) {
      if (err instanceof CheckpointNotFoundError) return null;
      throw err;
    }
  }

  /** One object of this bucket as a StoredObject (for datasets): `key` is relative to the store's prefix. */
  object(key: string): StoredObject {
    return {
      url: `${this.url}/${key}`,
      stat: async () => {
        const head = await this.head(key);
        if (!head) return this.missing(key);
        return { size: head.size, version: `${head.generation}:${head.md5}` };
      },
      read: (limit) => this.get(key, limit),
      stream: () => this.stream(key),
    };
  }

  /** The object's generation seen by a HEAD, from byte 0 on (see streamRequest). */
  private async *stream(key: string): AsyncGenerator<Uint8Array> {
    const head = await this.head(key);
    if (!head) return this.missing(key);
    const name = this.file(key).name;
    const file = this.bucket.file(name, head.generation ? { generation: head.generation } : {});
    const req = { op: 'GET', key, bytes: 0, backend: 'gcs', url: this.url };
    yield* streamRequest(this.policy, req, classifyGcs, head.size, async (offset) =>
      file.createReadStream({ start: offset, validation: false, decompress: false }),
    );
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listDetailed(prefix)).map((o) => o.key);
  }

  async listDetailed(prefix: string): Promise<StoredObjectInfo[]> {
    const base = this.prefix ? `${this.prefix}/` : '';
    const out: StoredObjectInfo[] = [];
    let pageToken: string | undefined;
    do {
      const [files, next] = await this.request('LIST', prefix, 0, () =>
        this.bucket.getFiles({ prefix: base + prefix, autoPaginate: false, maxResults: this.pageSize, pageToken }),
      );
      for (const f of files) {
        if (!f.name.startsWith(base) || f.name.endsWith('/')) continue;
        const md = f.metadata;
        out.push({
          key: f.name.slice(base.length),
          size: Number(md.size ?? 0),
          mtimeMs: md.updated ? Date.parse(String(md.updated)) : 0,
        });
      }
      pageToken = (next as { pageToken?: string } | null)?.pageToken;
    } while (pageToken);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const file = this.file(key);
    await this.request('DELETE', key, 0, () => file.delete({ ignoreNotFound: true }));
  }
}

/**
 * STORAGE_EMULATOR_HOST (an emulator's URL; the library reads it too), GOOGLE_CLOUD_PROJECT,
 * GOOGLE_APPLICATION_CREDENTIALS (a key file; else the rest of Application Default Credentials),
 * DURABLE_TRAIN_GCS_TIMEOUT_MS and DURABLE_TRAIN_GCS_MAX_ATTEMPTS.
 */
export function gcsOptionsFromEnv(env: NodeJS.ProcessEnv): Omit<GcsStoreOptions, 'bucket' | 'prefix'> {
  const emulator = env.STORAGE_EMULATOR_HOST || undefined;
  return {
    apiEndpoint: emulator && !/^https?:\/\//.test(emulator) ? `http://${emulator}` : emulator,
    projectId: env.GOOGLE_CLOUD_PROJECT || env.GCLOUD_PROJECT || undefined,
    keyFilename: env.GOOGLE_APPLICATION_CREDENTIALS || undefined,
    requestTimeoutMs: positiveEnv(env, 'DURABLE_TRAIN_GCS_TIMEOUT_MS'),
    maxAttempts: positiveEnv(env, 'DURABLE_TRAIN_GCS_MAX_ATTEMPTS'),
  };
}

export function openGcsStore(loc: StorageLocation & { kind: 'gs' }, env: NodeJS.ProcessEnv): GcsCheckpointStore {
  return new GcsCheckpointStore({ bucket: loc.bucket, prefix: loc.prefix, ...gcsOptionsFromEnv(env) });
}

/** The object gs://BUCKET/NAME (the location's prefix is the object's name). */
export function openGcsObject(loc: StorageLocation & { kind: 'gs' }, env: NodeJS.ProcessEnv): StoredObject {
  return new GcsCheckpointStore({ bucket: loc.bucket, prefix: '', ...gcsOptionsFromEnv(env) }).object(loc.prefix);
}
