// Storage: one table of backends, keyed by the URL schemes of url.ts. `openStore` gives the checkpoint store contract
// (interface.ts) for checkpoints, metrics logs and TensorBoard files; `openObject` one object (datasets, model files).
// A new backend is one file exporting its two openers, plus its entry here and in url.ts's SCHEMES.
// The cloud backends are loaded when a URL of theirs is first opened: their SDKs (AWS, Google Cloud, Azure) take a
// second or more to load together, which every CLI command and training process would otherwise pay. Import a
// cloud store's class from its own file (storage/s3.ts, gcs.ts, azure.ts).
import { openFsObject, openFsStore } from './fs';
import type { CheckpointStore, StoredObject } from './interface';
import { parseObjectUrl, parseStorageUrl, type StorageKind, type StorageLocation } from './url';

export * from './interface';
export * from './url';
export { FsCheckpointStore } from './fs';
export type { S3StoreOptions } from './s3';
export type { GcsStoreOptions } from './gcs';
export type { AzureStoreOptions } from './azure';

/* eslint-disable @typescript-eslint/no-require-imports -- a synchronous lazy load: openStore is synchronous */
const s3 = (): typeof import('./s3') => require('./s3');
const gcs = (): typeof import('./gcs') => require('./gcs');
const azure = (): typeof import('./azure') => require('./azure');
/* eslint-enable @typescript-eslint/no-require-imports */

/** Where a backend finds what the URL does not say: relative paths' base directory, credentials and endpoints. */
export interface OpenContext {
  baseDir: string;
  env: NodeJS.ProcessEnv;
}

interface Backend<L extends StorageLocation> {
  openStore(loc: L, ctx: OpenContext): CheckpointStore;
  openObject(loc: L, ctx: OpenContext): StoredObject;
}

type Backends = { [K in StorageKind]: Backend<Extract<StorageLocation, { kind: K }>> };

const BACKENDS: Backends = {
  file: {
    openStore: (loc, ctx) => openFsStore(loc, ctx.baseDir),
    openObject: (loc, ctx) => openFsObject(loc, ctx.baseDir),
  },
  s3: {
    openStore: (loc, ctx) => s3().openS3Store(loc, ctx.env),
    openObject: (loc, ctx) => s3().openS3Object(loc, ctx.env),
  },
  gs: {
    openStore: (loc, ctx) => gcs().openGcsStore(loc, ctx.env),
    openObject: (loc, ctx) => gcs().openGcsObject(loc, ctx.env),
  },
  az: {
    openStore: (loc, ctx) => azure().openAzureStore(loc, ctx.env),
    openObject: (loc, ctx) => azure().openAzureObject(loc, ctx.env),
  },
};

function backendOf<L extends StorageLocation>(loc: L): Backend<L> {
  return BACKENDS[loc.kind] as unknown as Backend<L>;
}

const contextOf = (baseDir?: string, env?: NodeJS.ProcessEnv): OpenContext => ({
  baseDir: baseDir ?? process.cwd(),
  env: env ?? process.env,
});

/**
 * Opens a store from a storage URL (see parseStorageUrl). Relative `file://` paths resolve against baseDir (default
 * cwd); cloud settings come from the environment (default process.env). Nothing is read or written.
 */
export function openStore(url: string, baseDir?: string, env?: NodeJS.ProcessEnv): CheckpointStore {
  const loc = parseStorageUrl(url);
  return backendOf(loc).openStore(loc, contextOf(baseDir, env));
}

/** Opens one object (a dataset or model file) from its URL (see parseObjectUrl). Nothing is read yet. */
export function openObject(url: string, baseDir?: string, env?: NodeJS.ProcessEnv): StoredObject {
  const loc = parseObjectUrl(url);
  return backendOf(loc).openObject(loc, contextOf(baseDir, env));
}

/** The old name of parseStorageUrl. */
export { parseStorageUrl as parseStoreUrl };
