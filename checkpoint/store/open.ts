// The store factory: a storage URL (plus, for S3, the environment) -> a CheckpointStore.
import * as path from 'node:path';
import { FsCheckpointStore } from './fs';
import type { CheckpointStore } from './interface';
import { S3CheckpointStore, type S3StoreOptions } from './s3';

/** Where checkpoints live, as a storage URL names it. Relative file paths are resolved by openStore. */
export type StorageLocation = { kind: 'file'; path: string } | { kind: 's3'; bucket: string; prefix: string };

/**
 * Parses a storage URL: `file://relative/path`, `file:///absolute/path` or `s3://bucket/prefix`. Pure; throws an
 * Error naming the URL and what is wrong with it.
 */
export function parseStoreUrl(url: string): StorageLocation {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/.exec(url ?? '');
  if (!m)
    throw new Error(`checkpoint storage ${JSON.stringify(url)} is not a URL: use file://PATH or s3://BUCKET/PREFIX`);
  const scheme = m[1].toLowerCase();
  const rest = m[2];
  if (scheme === 'file') {
    if (!rest) throw new Error(`checkpoint storage ${url} has no path: use file://PATH or file:///ABSOLUTE/PATH`);
    return { kind: 'file', path: rest };
  }
  if (scheme === 's3') {
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    if (!bucket) throw new Error(`checkpoint storage ${url} has no bucket: use s3://BUCKET/PREFIX`);
    return { kind: 's3', bucket, prefix: slash < 0 ? '' : rest.slice(slash + 1) };
  }
  throw new Error(`checkpoint storage ${url}: unknown scheme ${scheme}:// (supported: file://, s3://)`);
}

/**
 * S3 connection settings from the environment: DURABLE_TRAIN_S3_ENDPOINT, AWS_REGION (or AWS_DEFAULT_REGION,
 * default us-east-1), AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN; without them the SDK's
 * default chain is used), DURABLE_TRAIN_S3_TIMEOUT_MS and DURABLE_TRAIN_S3_MAX_ATTEMPTS (positive numbers).
 */
export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Omit<S3StoreOptions, 'bucket' | 'prefix'> {
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${v} is not a positive number`);
    return n;
  };
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
    requestTimeoutMs: num('DURABLE_TRAIN_S3_TIMEOUT_MS'),
    maxAttempts: num('DURABLE_TRAIN_S3_MAX_ATTEMPTS'),
  };
}

/**
 * Opens a store from a storage URL (see parseStoreUrl). Relative `file://` paths resolve against baseDir (default
 * cwd); S3 settings come from the environment (see s3OptionsFromEnv), with path-style addressing.
 */
export function openStore(url: string, baseDir: string = process.cwd()): CheckpointStore {
  const loc = parseStoreUrl(url);
  if (loc.kind === 'file') return new FsCheckpointStore(path.resolve(baseDir, loc.path));
  return new S3CheckpointStore({ bucket: loc.bucket, prefix: loc.prefix, ...s3OptionsFromEnv() });
}
