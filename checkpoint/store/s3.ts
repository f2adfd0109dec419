// S3-compatible store. Every request runs under a deadline and bounded retries of our own (the SDK's retries
// are off), so a stalled or unreachable endpoint turns into an error within a known time, never a hang that
// would stall a training activity past its heartbeat timeout. Uploads carry Content-MD5, so the server rejects
// bytes damaged in transit.
//
// Errors: NoSuchKey (or 404 on GET/HEAD of an existing bucket) is CheckpointNotFoundError; every other failure,
// after the retries, is StorageUnavailableError with `retryable` true for timeouts, network errors, 5xx, 408
// and 429, false for what an operator must fix (403, bad credentials, missing bucket, other 4xx).
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
  type StoredObjectInfo,
  type WriteAtomicOptions,
} from './interface';

// The lock file pins an SDK that runs on Node 20; its 'upgrade to Node 22' notice is noise on every worker start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ('' = bucket root). */
  prefix?: string;
  endpoint?: string;
  region?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Path-style addressing (bucket in the path); default true, as most S3-compatible servers want. */
  forcePathStyle?: boolean;
  /** Deadline of one attempt before its payload allowance; also the connect and socket-idle timeout. Default 30 s. */
  requestTimeoutMs?: number;
  /** Extra deadline per byte moved, as a minimum throughput (bytes/s). Default 1 MiB/s. */
  minBytesPerSecond?: number;
  /** Attempts per request, including the first. Default 4. */
  maxAttempts?: number;
  /** First backoff delay; doubles per attempt, with jitter. Default 200 ms. */
  retryBaseDelayMs?: number;
  /**
   * writeBlob skips an upload only when the identical object is younger than this, so blob GC (which spares
   * blobs younger than its grace period) can never delete a blob that a commit in flight reuses. Default 30 min.
   */
  dedupMaxAgeMs?: number;
  /** Use this client instead of building one (its own timeouts then apply in addition to ours). */
  client?: S3Client;
}

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
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
]);

interface S3ErrorLike {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

const statusOf = (err: unknown) => (err as S3ErrorLike)?.$metadata?.httpStatusCode;
const codeOf = (err: unknown) => {
  const e = err as S3ErrorLike;
  return e?.Code ?? e?.code ?? e?.name;
};
const md5 = (data: Uint8Array) => createHash('md5').update(data).digest();
const unquote = (etag: string | undefined) => (etag ?? '').replace(/^W\//, '').replace(/"/g, '').toLowerCase();

class AttemptTimeout extends Error {
  override readonly name = 'TimeoutError';
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

interface Attempt {
  signal: AbortSignal;
  /** Grants more time to this attempt, e.g. once a download's length is known. */
  extend(ms: number): void;
}

export class S3CheckpointStore implements CheckpointStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly timeoutMs: number;
  private readonly bytesPerSecond: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly dedupMaxAgeMs: number;
  /** Set when the server rejects If-None-Match as unsupported; we then check-then-put instead. */
  private conditionalPutUnsupported = false;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw new Error('S3CheckpointStore needs a bucket');
    this.bucket = opts.bucket;
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.url = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.bytesPerSecond = opts.minBytesPerSecond ?? 1 << 20;
    this.maxAttempts = Math.max(1, Math.floor(opts.maxAttempts ?? 4));
    this.baseDelayMs = opts.retryBaseDelayMs ?? 200;
    this.dedupMaxAgeMs = opts.dedupMaxAgeMs ?? 30 * 60_000;
    this.client =
      opts.client ??
      new S3Client({
        endpoint: opts.endpoint,
        region: opts.region ?? 'us-east-1',
        credentials: opts.credentials,
        forcePathStyle: opts.forcePathStyle ?? true,
        maxAttempts: 1, // retries are ours, with our deadline per attempt
        requestHandler: { connectionTimeout: this.timeoutMs, socketTimeout: this.timeoutMs },
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
      if (status === 412 || (err as StorageUnavailableError).code === 'PreconditionFailed')
        return this.sameOrConflict(key, data);
      if (status === 501 || (err as StorageUnavailableError).code === 'NotImplemented') {
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
    const Key = this.objectKey(key);
    return this.request('GET', key, 0, async ({ signal, extend }) => {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }), { abortSignal: signal });
      if (!res.Body) return new Uint8Array(0);
      if (res.ContentLength) extend((res.ContentLength / this.bytesPerSecond) * 1000);
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
        return bytes;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
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

  /** Runs one logical request: each attempt under a deadline, retried with backoff when it can help. */
  private async request<T>(op: string, key: string, bytes: number, fn: (a: Attempt) => Promise<T>): Promise<T> {
    let last: unknown;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.withDeadline(this.timeoutMs + (bytes / this.bytesPerSecond) * 1000, fn);
      } catch (err) {
        last = err;
        const status = statusOf(err);
        const code = codeOf(err);
        // A missing object is an answer; a missing bucket (or a 404 on list/put) is a misconfiguration.
        if (code === 'NoSuchKey' || ((op === 'GET' || op === 'HEAD') && status === 404 && code !== 'NoSuchBucket')) {
          throw new CheckpointNotFoundError(key, `not found: ${this.url}/${key}`);
        }
        const retryable =
          err instanceof AttemptTimeout ||
          (status !== undefined && (status >= 500 || status === 408 || status === 429) && status !== 501) ||
          RETRYABLE_CODES.has(code ?? '') ||
          (status === undefined && /socket hang up|ECONNRESET|network|aborted/i.test((err as Error)?.message ?? ''));
        if (!retryable || attempt >= this.maxAttempts) {
          throw new StorageUnavailableError(
            `s3 ${op} ${this.url}/${key} failed${retryable ? ` after ${attempt} attempts` : ''}: ${code ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${(err as Error)?.message ?? String(err)}`,
            { op, key, attempts: attempt, retryable, code, status },
            { cause: last },
          );
        }
        const delay = this.baseDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random());
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Resolves with fn's result or rejects at the deadline, even if the SDK ignores the abort signal. */
  private withDeadline<T>(ms: number, fn: (a: Attempt) => Promise<T>): Promise<T> {
    const ctl = new AbortController();
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout;
      let deadline = ms;
      const arm = (wait: number) => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          const err = new AttemptTimeout(Math.round(deadline));
          ctl.abort(err);
          reject(err);
        }, wait);
      };
      const started = Date.now();
      arm(ms);
      const extend = (more: number) => {
        deadline += more;
        arm(Math.max(0, started + deadline - Date.now()));
      };
      fn({ signal: ctl.signal, extend }).then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e) => {
          clearTimeout(timer);
          reject(ctl.signal.aborted && ctl.signal.reason instanceof AttemptTimeout ? ctl.signal.reason : e);
        },
      );
    });
  }
}
