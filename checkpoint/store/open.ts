// The store factory: a storage URL (plus, for S3, the environment) -> a CheckpointStore.
import * as path from 'node:path';
import { FsCheckpointStore } from './fs';
import type { CheckpointStore } from './interface';
import { S3CheckpointStore, type S3StoreOptions } from './s3';
import { parseStorageUrl } from '../../spec/storage-url';

// One rule for storage URLs: the spec refuses exactly what this factory cannot open.
export { parseStorageUrl as parseStoreUrl, type StorageLocation } from '../../spec/storage-url';

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
  const loc = parseStorageUrl(url);
  if (loc.kind === 'file') return new FsCheckpointStore(path.resolve(baseDir, loc.path));
  return new S3CheckpointStore({ bucket: loc.bucket, prefix: loc.prefix, ...s3OptionsFromEnv() });
}
