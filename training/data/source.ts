// Where dataset bytes come from: file:// (relative to a base directory) or s3://bucket/key, with the size known
// (stat / HEAD) before anything is read, so an oversized file is refused before it costs memory.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DatasetError } from './errors';

// The SDK's 'upgrade to Node 22' notice is noise on every worker start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export const DEFAULT_MAX_DATASET_BYTES = 1024 * 1024 * 1024;

export type Source =
  | { kind: 'file'; url: string; field: string; file: string }
  | { kind: 's3'; url: string; field: string; bucket: string; key: string };

export interface SourceInfo {
  size: number;
  /** Changes when the content may have: mtime for files, ETag and date for S3. */
  version: string;
}

export function resolveSource(url: unknown, baseDir: string, field: string): Source {
  if (typeof url !== 'string' || url === '') {
    throw new DatasetError(field, `expected a URL (file://PATH or s3://BUCKET/KEY), got ${JSON.stringify(url)}`);
  }
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/.exec(url);
  if (!m) throw new DatasetError(field, `${JSON.stringify(url)} is not a URL: use file://PATH or s3://BUCKET/KEY`);
  const scheme = m[1].toLowerCase();
  const rest = m[2];
  if (scheme === 'file') {
    if (!rest) throw new DatasetError(field, `${url} has no path: use file://PATH or file:///ABSOLUTE/PATH`);
    return { kind: 'file', url, field, file: rest.startsWith('/') ? rest : path.resolve(baseDir, rest) };
  }
  if (scheme === 's3') {
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const key = slash < 0 ? '' : rest.slice(slash + 1);
    if (!bucket || !key) throw new DatasetError(field, `${url} needs a bucket and a key: use s3://BUCKET/KEY`);
    return { kind: 's3', url, field, bucket, key };
  }
  throw new DatasetError(field, `${url}: unknown scheme ${scheme}:// (supported: file://, s3://)`);
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

function s3Client(): S3Client {
  const env = process.env;
  return new S3Client({
    endpoint: env.DURABLE_TRAIN_S3_ENDPOINT || undefined,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    forcePathStyle: true,
    credentials:
      env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? {
            accessKeyId: env.AWS_ACCESS_KEY_ID,
            secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
            sessionToken: env.AWS_SESSION_TOKEN || undefined,
          }
        : undefined,
    requestHandler: { connectionTimeout: 10_000, socketTimeout: 60_000 },
  });
}

function isS3NotFound(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return (
    e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.Code === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404
  );
}

function isS3Denied(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'AccessDenied' || e?.$metadata?.httpStatusCode === 403;
}

function s3Failure(src: Source, err: unknown): Error {
  if (isS3NotFound(err)) return new DatasetError(src.field, `${src.url} does not exist`);
  if (isS3Denied(err))
    return new DatasetError(src.field, `${src.url} is not readable with these credentials (access denied)`);
  // Anything else (network, server) may pass: a plain error, so the caller may retry.
  return new Error(`${src.field}: reading ${src.url} failed: ${(err as Error)?.message ?? String(err)}`);
}

function fileFailure(src: Source & { kind: 'file' }, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  const where = src.url === `file://${src.file}` ? src.url : `${src.url} (${src.file})`;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new DatasetError(src.field, `${where} does not exist`);
  if (code === 'EACCES' || code === 'EPERM')
    return new DatasetError(src.field, `${where} is not readable (permission denied)`);
  if (code === 'EISDIR') return new DatasetError(src.field, `${where} is a directory, not a file`);
  return new Error(`${src.field}: reading ${where} failed: ${(err as Error)?.message ?? String(err)}`);
}

export async function statSource(src: Source): Promise<SourceInfo> {
  if (src.kind === 'file') {
    try {
      const st = await fsp.stat(src.file);
      if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      return { size: st.size, version: `${st.mtimeMs}:${st.ino}` };
    } catch (err) {
      throw fileFailure(src, err);
    }
  }
  const client = s3Client();
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket: src.bucket, Key: src.key }));
    return { size: head.ContentLength ?? 0, version: `${head.ETag ?? ''}:${head.LastModified?.toISOString() ?? ''}` };
  } catch (err) {
    throw s3Failure(src, err);
  } finally {
    client.destroy();
  }
}

/** The whole object, or its first `limit` bytes. */
export async function readSource(src: Source, limit?: number): Promise<Uint8Array> {
  if (src.kind === 'file') {
    try {
      if (limit === undefined) return new Uint8Array(await fsp.readFile(src.file));
      const fh = await fsp.open(src.file, 'r');
      try {
        const buf = new Uint8Array(limit);
        let got = 0;
        while (got < limit) {
          const { bytesRead } = await fh.read(buf, got, limit - got, got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return buf.subarray(0, got);
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw fileFailure(src, err);
    }
  }
  const client = s3Client();
  try {
    const got = await client.send(
      new GetObjectCommand({
        Bucket: src.bucket,
        Key: src.key,
        Range: limit === undefined ? undefined : `bytes=0-${Math.max(0, limit - 1)}`,
      }),
    );
    if (!got.Body) return new Uint8Array(0);
    const bytes = await got.Body.transformToByteArray();
    return limit === undefined ? bytes : bytes.subarray(0, limit);
  } catch (err) {
    throw s3Failure(src, err);
  } finally {
    client.destroy();
  }
}
