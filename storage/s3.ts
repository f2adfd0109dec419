// S3-compatible store. Every request runs under a deadline and bounded retries of our own (the SDK's retries
// are off), so a stalled or unreachable endpoint turns into an error within a known time, never a hang that
// would stall a training activity past its heartbeat timeout. Uploads carry Content-MD5, so the server rejects
// bytes damaged in transit.
//
// Errors: NoSuchKey (or 404 on GET/HEAD of an existing bucket) is CheckpointNotFoundError; every other failure,
// after the retries, is StorageUnavailableError with `retryable` true for timeouts, network errors, 5xx, 408
// and 429, false for what an operator must fix (403, bad credentials, missing bucket, other 4xx).
//
// Connection settings come from the environment (s3OptionsFromEnv); the scheme table (index.ts) opens stores and
// objects of s3:// locations through openS3Store / openS3Object.
import { createHash } from 'node:crypto';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
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
  type Body,
  type Attempt,
  type RetryOptions,
  type RetryPolicy,
  type Verdict,
  positiveEnv,
} from './request';
import type { StorageLocation } from './url';

// The lock file pins an SDK that runs on Node 20; its 'upgrade to Node 22' notice is noise on every worker start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface S3StoreOptions extends RetryOptions {
  bucket: string;
  /** Key prefix inside the bucket ('' = bucket root). */
  prefix?: string;
  endpoint?: string;
  region?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Path-style addressing (bucket in the path); default true, as most S3-compatible servers want. */
  forcePathStyle?: boolean;
  /**
   * writeBlob skips an upload only when the identical object is younger than this, so blob GC (which spares
   * blobs younger than its grace period) can never delete a blob that a commit in flight reuses. Default 30 min.
   */
  dedupMaxAgeMs?: number;
  /** Use this client instead of building one (its own timeouts then apply in addition to ours). */
  client?: S3Client;
}

// S3 error codes worth another attempt (network errno codes are recognised by isNetworkFailure).
const RETRYABLE_CODES = new Set([
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'InternalError',
  'ServiceUnavailable',
  'BadDigest',
  'TimeoutError',
]);

interface S3ErrorLike {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const statusOf = (err: unknown) => (err as S3ErrorLike)?.$metadata?.httpStatusCode;
const codeOf = (err: unknown) => {
  const e = err as S3ErrorLike;
  return e?.Code ?? e?.code ?? e?.name;
};
const md5 = (data: Uint8Array) => createHash('md5').update(data).digest();
const unquote = (etag: string | undefined) => (etag ?? '').replace(/^W\//, '').replace(/"/g, '').toLowerCase();

/** A missing object is an answer; a missing bucket (or a 404 on list/put) is a misconfiguration. */
function classifyS3(err: unknown, op: string): Verdict {
  const status = statusOf(err);
  const code = codeOf(err);
  if (code === 'NoSuchKey' || ((op === 'GET' || op === 'HEAD') && status === 404 && code !== 'NoSuchBucket')) {
    return { notFound: true, retryable: false };
  }
  const retryable =
    retryableStatus(status) || RETRYABLE_CODES.has(code ?? '') || (status === undefined && isNetworkFailure(err));
  return { retryable, code, status };
}

export class S3CheckpointStore implements CheckpointStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly policy: RetryPolicy;
  private readonly dedupMaxAgeMs: number;
  /** Set when the server rejects If-None-Match as unsupported; we then check-then-put instead. */
  private conditionalPutUnsupported = false;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw new Error('S3CheckpointStore needs a bucket');
    this.bucket = opts.bucket;
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.url = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.policy = retryPolicy(opts);
    this.dedupMaxAgeMs = opts.dedupMaxAgeMs ?? 30 * 60_000;
    this.client =
      opts.client ??
      new S3Client({
        endpoint: opts.endpoint,
        region: opts.region ?? 'us-east-1',
        credentials: opts.credentials,
        forcePathStyle: opts.forcePathStyle ?? true,
        maxAttempts: 1, // retries are ours, with our deadline per attempt
        requestHandler: { connectionTimeout: this.policy.timeoutMs, socketTimeout: this.policy.timeoutMs },
        // We hash every byte ourselves (sha256 in the manifest, Content-MD5 on upload); the SDK's default
        // flexible checksums are not understood by every S3-compatible server.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
  }

  private objectKey(key: string): string {
    assertKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async writeBlob(key: string, data: Uint8Array): Promise<void> {
    const digest = md5(data);
    const head = await this.head(key);
    if (
      head &&
      head.size === data.byteLength &&
      head.etag === digest.toString('hex') &&
      Date.now() - head.mtimeMs < this.dedupMaxAgeMs
    ) {
      return;
    }
    await this.put(key, data, digest, false);
  }

  async writeAtomic(key: string, data: Uint8Array, opts: WriteAtomicOptions = {}): Promise<void> {
    const digest = md5(data);
    if (!opts.ifAbsent) return this.put(key, data, digest, false);
    if (this.conditionalPutUnsupported) {
      if (await this.exists(key)) return this.sameOrConflict(key, data);
      return this.put(key, data, digest, false);
    }
    try {
      await this.put(key, data, digest, true);
    } catch (err) {
      const status = (err as StorageUnavailableError).details?.status;
      // 412: it exists. After a retry this is usually our own first attempt that did land.
      if (status === 412 || (err as StorageUnavailableError).storageCode === 'PreconditionFailed')
        return this.sameOrConflict(key, data);
      if (status === 501 || (err as StorageUnavailableError).storageCode === 'NotImplemented') {
        this.conditionalPutUnsupported = true;
        return this.writeAtomic(key, data, opts);
      }
      throw err;
    }
  }

  private async sameOrConflict(key: string, data: Uint8Array): Promise<void> {
    const existing = await this.read(key);
    if (!Buffer.from(existing).equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) {
      throw new CheckpointConflictError(key);
    }
  }

  private async put(key: string, data: Uint8Array, digest: Buffer, ifNoneMatch: boolean): Promise<void> {
    const Key = this.objectKey(key);
    const res = await this.request('PUT', key, data.byteLength, ({ signal }) =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: data,
          ContentLength: data.byteLength,
          ContentMD5: digest.toString('base64'),
          ContentType: 'application/octet-stream',
          ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        }),
        { abortSignal: signal },
      ),
    );
    // A plain (non-multipart) ETag is the MD5 of the stored bytes: one more end-to-end check.
    const etag = unquote(res.ETag);
    if (/^[0-9a-f]{32}$/.test(etag) && etag !== digest.toString('hex')) {
      throw new StorageUnavailableError(`s3 PUT ${this.url}/${key}: server stored different bytes (ETag ${etag})`, {
        op: 'PUT',
        key,
        attempts: 1,
        retryable: true,
      });
    }
  }

  async read(key: string): Promise<Uint8Array> {
    return this.get(key);
  }

  /** GET of the whole object, or (with `limit`) its first `limit` bytes. */
  private async get(key: string, limit?: number): Promise<Uint8Array> {
    const Key = this.objectKey(key);
    const Range = limit === undefined ? undefined : `bytes=0-${Math.max(0, limit - 1)}`;
    return this.request('GET', key, 0, async ({ signal, extend }) => {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range }), {
        abortSignal: signal,
      });
      if (!res.Body) return new Uint8Array(0);
      if (res.ContentLength) extend((res.ContentLength / this.policy.bytesPerSecond) * 1000);
      const body = res.Body as { transformToByteArray(): Promise<Uint8Array>; destroy?: () => void };
      const onAbort = () => body.destroy?.();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const bytes = await body.transformToByteArray();
        if (res.ContentLength !== undefined && bytes.byteLength !== res.ContentLength) {
          throw Object.assign(new Error(`short read: ${bytes.byteLength} of ${res.ContentLength} bytes`), {
            code: 'ECONNRESET',
          });
        }
        return limit === undefined ? bytes : bytes.subarray(0, limit);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    });
  }

  /** One object of this bucket as a StoredObject (for datasets): `key` is relative to the store's prefix. */
  object(key: string): StoredObject {
    return {
      url: `${this.url}/${key}`,
      stat: async () => {
        const head = await this.head(key);
        if (!head) throw new CheckpointNotFoundError(key, `not found: ${this.url}/${key}`);
        return { size: head.size, version: `${head.etag}:${new Date(head.mtimeMs).toISOString()}` };
      },
      read: (limit) => this.get(key, limit),
      stream: () => this.stream(key),
    };
  }

  /** The object from a HEAD's version on: ranged GETs with If-Match (see streamRequest). */
  private async *stream(key: string): AsyncGenerator<Uint8Array> {
    const head = await this.head(key);
    if (!head) throw new CheckpointNotFoundError(key, `not found: ${this.url}/${key}`);
    const Key = this.objectKey(key);
    const req = { op: 'GET', key, bytes: 0, backend: 's3', url: this.url };
    yield* streamRequest(this.policy, req, classifyS3, head.size, async (offset, signal) => {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key, Range: `bytes=${offset}-`, IfMatch: `"${head.etag}"` }),
        { abortSignal: signal },
      );
      return res.Body as Body;
    });
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== null;
  }

  private async head(key: string): Promise<{ size: number; etag: string; mtimeMs: number } | null> {
    const Key = this.objectKey(key);
    try {
      const res = await this.request('HEAD', key, 0, ({ signal }) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal: signal }),
      );
      return { size: res.ContentLength ?? -1, etag: unquote(res.ETag), mtimeMs: res.LastModified?.getTime() ?? 0 };
    } catch (err) {
      if (err instanceof CheckpointNotFoundError) return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listDetailed(prefix)).map((o) => o.key);
  }

  async listDetailed(prefix: string): Promise<StoredObjectInfo[]> {
    const base = this.prefix ? `${this.prefix}/` : '';
    const out: StoredObjectInfo[] = [];
    let token: string | undefined;
    do {
      const res = await this.request('LIST', prefix, 0, ({ signal }) =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: base + prefix, ContinuationToken: token }),
          { abortSignal: signal },
        ),
      );
      for (const o of res.Contents ?? []) {
        if (!o.Key?.startsWith(base)) continue;
        const key = o.Key.slice(base.length);
        if (key.endsWith('/')) continue; // folder markers some servers return
        out.push({ key, size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0 });
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    await this.request('DELETE', key, 0, ({ signal }) =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal: signal }),
    );
  }

  private request<T>(op: string, key: string, bytes: number, fn: (a: Attempt) => Promise<T>): Promise<T> {
    return runRequest(this.policy, { op, key, bytes, backend: 's3', url: this.url }, classifyS3, fn);
  }
}

/**
 * DURABLE_TRAIN_S3_ENDPOINT (e.g. a MinIO or SeaweedFS URL; unset: AWS), AWS_REGION (or AWS_DEFAULT_REGION, default
 * us-east-1), AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN; without them the SDK's default chain),
 * DURABLE_TRAIN_S3_TIMEOUT_MS and DURABLE_TRAIN_S3_MAX_ATTEMPTS (positive numbers).
 */
export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Omit<S3StoreOptions, 'bucket' | 'prefix'> {
  return {
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
    requestTimeoutMs: positiveEnv(env, 'DURABLE_TRAIN_S3_TIMEOUT_MS'),
    maxAttempts: positiveEnv(env, 'DURABLE_TRAIN_S3_MAX_ATTEMPTS'),
  };
}

export function openS3Store(loc: StorageLocation & { kind: 's3' }, env: NodeJS.ProcessEnv): S3CheckpointStore {
  return new S3CheckpointStore({ bucket: loc.bucket, prefix: loc.prefix, ...s3OptionsFromEnv(env) });
}

/** The object s3://BUCKET/KEY (the location's prefix is the key). */
export function openS3Object(loc: StorageLocation & { kind: 's3' }, env: NodeJS.ProcessEnv): StoredObject {
  return new S3CheckpointStore({ bucket: loc.bucket, prefix: '', ...s3OptionsFromEnv(env) }).object(loc.prefix);
}
