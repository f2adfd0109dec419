// Azure Blob Storage store (az://CONTAINER/PREFIX, or https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX)
// through @azure/storage-blob. Credentials: AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with
// AZURE_STORAGE_KEY (shared key) or AZURE_STORAGE_SAS_TOKEN, else Microsoft Entra ID through @azure/identity's
// DefaultAzureCredential (environment, workload identity, managed identity, Azure CLI, ...). Requests run through request.ts (deadline per attempt,
// our retries; the SDK's are off). The MD5 the service reports for each upload is compared with ours; the
// manifest is published with If-None-Match: *, so it is written once or not at all.
//
// Errors: BlobNotFound (or a 404 on a read of an existing container) is CheckpointNotFoundError; a missing container,
// a refusal (401, 403: wrong key, no permission) and other 4xx are StorageUnavailableError with retryable false;
// timeouts, network errors, 5xx, 408 and 429 are retried, then StorageUnavailableError with retryable true.
import { createHash } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import {
  AnonymousCredential,
  BlobServiceClient,
  StorageSharedKeyCredential,
  type ContainerClient,
} from '@azure/storage-blob';
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
  readBody,
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

export interface AzureStoreOptions extends RetryOptions {
  container: string;
  /** Blob name prefix inside the container ('' = container root). */
  prefix?: string;
  /** How the service is reached: a connection string, or an account URL with a credential. */
  connectionString?: string;
  /** The blob service's URL (default https://ACCOUNT.blob.core.windows.net): another cloud, or an emulator. */
  accountUrl?: string;
  accountName?: string;
  accountKey?: string;
  sasToken?: string;
  /** The Entra ID credential used when there is no key, SAS or connection string; default DefaultAzureCredential. */
  tokenCredential?: TokenCredential;
  /** writeBlob skips an upload only when the identical blob is younger than this (see S3StoreOptions). */
  dedupMaxAgeMs?: number;
  /** Blobs per listing page (the service's maximum is 5000). */
  pageSize?: number;
}

interface RestErrorLike {
  statusCode?: number;
  code?: string;
  details?: { errorCode?: string };
  message?: string;
}

const md5 = (data: Uint8Array) => createHash('md5').update(data).digest();

/** How the store authenticates, in the order it looks (see azureOptionsFromEnv). */
export type AzureAuth = 'connection-string' | 'shared-key' | 'sas' | 'entra-id';

export function azureAuthOf(
  opts: Pick<AzureStoreOptions, 'connectionString' | 'accountName' | 'accountKey' | 'sasToken'>,
): AzureAuth {
  if (opts.connectionString) return 'connection-string';
  if (opts.accountKey && opts.accountName) return 'shared-key';
  if (opts.sasToken) return 'sas';
  return 'entra-id';
}

/** @azure/identity's credential errors: no credential found, or one that the identity provider refused. */
const CREDENTIAL_ERRORS = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AggregateAuthenticationError',
]);

function classifyAzure(err: unknown, op: string): Verdict {
  const e = err as RestErrorLike;
  if (CREDENTIAL_ERRORS.has((err as Error)?.name)) return { retryable: false, code: (err as Error).name };
  const status = e?.statusCode;
  const code = e?.details?.errorCode ?? e?.code;
  if (code === 'BlobNotFound' || ((op === 'GET' || op === 'HEAD') && status === 404 && code !== 'ContainerNotFound')) {
    return { notFound: true, retryable: false };
  }
  const retryable =
    retryableStatus(status) ||
    ((status === undefined || status === 0) && isNetworkFailure(err)) ||
    code === 'REQUEST_ABORTED';
  return { retryable, code, status: status || undefined };
}

export class AzureCheckpointStore implements CheckpointStore {
  readonly url: string;
  readonly containerName: string;
  readonly prefix: string;
  readonly container: ContainerClient;
  readonly auth: AzureAuth;
  private readonly policy: RetryPolicy;
  private readonly dedupMaxAgeMs: number;
  private readonly pageSize: number;

  constructor(opts: AzureStoreOptions) {
    if (!opts.container) throw new Error('AzureCheckpointStore needs a container');
    this.containerName = opts.container;
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.policy = retryPolicy(opts);
    this.dedupMaxAgeMs = opts.dedupMaxAgeMs ?? 30 * 60_000;
    this.pageSize = opts.pageSize ?? 5000;
    // One attempt per SDK call, under a timeout a little past ours: the retries are ours.
    const pipeline = { retryOptions: { maxTries: 1, tryTimeoutInMs: this.policy.timeoutMs * 4 } };
    this.auth = azureAuthOf(opts);
    let service: BlobServiceClient;
    if (opts.connectionString) {
      service = BlobServiceClient.fromConnectionString(opts.connectionString, pipeline);
    } else {
      const accountUrl = opts.accountUrl?.replace(/\/+$/, '') ?? `https://${opts.accountName}.blob.core.windows.net`;
      if (!opts.accountUrl && !opts.accountName) {
        throw new Error(
          'Azure storage needs AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT or DURABLE_TRAIN_AZURE_BLOB_ENDPOINT',
        );
      }
      const credential =
        this.auth === 'shared-key'
          ? new StorageSharedKeyCredential(opts.accountName!, opts.accountKey!)
          : this.auth === 'sas'
            ? new AnonymousCredential()
            : (opts.tokenCredential ?? defaultAzureCredential());
      const sas = this.auth === 'sas' ? `?${opts.sasToken!.replace(/^\?/, '')}` : '';
      service = new BlobServiceClient(`${accountUrl}${sas}`, credential, pipeline);
    }
    this.container = service.getContainerClient(this.containerName);
    this.url = `az://${this.containerName}${this.prefix ? `/${this.prefix}` : ''}`;
  }

  private blob(key: string) {
    assertKey(key);
    return this.container.getBlockBlobClient(this.prefix ? `${this.prefix}/${key}` : key);
  }

  private request<T>(op: string, key: string, bytes: number, fn: (a: Attempt) => Promise<T>): Promise<T> {
    return runRequest(this.policy, { op, key, bytes, backend: 'azure', url: this.url }, classifyAzure, fn);
  }

  async writeBlob(key: string, data: Uint8Array): Promise<void> {
    const digest = md5(data);
    const head = await this.head(key);
    if (
      head &&
      head.size === data.byteLength &&
      head.md5 === digest.toString('base64') &&
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
      // 409 BlobAlreadyExists (or 412): it exists. After a retry this is usually our own first attempt that landed.
      const status = (err as { details?: { status?: number } }).details?.status;
      if (status !== 409 && status !== 412) throw err;
      const existing = await this.read(key);
      if (!Buffer.from(existing).equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) {
        throw new CheckpointConflictError(key);
      }
    }
  }

  private async put(key: string, data: Uint8Array, digest: Buffer, ifNoneMatch: boolean): Promise<void> {
    const blob = this.blob(key);
    const res = await this.request('PUT', key, data.byteLength, ({ signal }) =>
      blob.upload(data, data.byteLength, {
        abortSignal: signal,
        blobHTTPHeaders: { blobContentType: 'application/octet-stream', blobContentMD5: digest },
        ...(ifNoneMatch ? { conditions: { ifNoneMatch: '*' } } : {}),
      }),
    );
    // Put Blob answers with the MD5 of what the service stored: one more end-to-end check.
    if (res.contentMD5 && !Buffer.from(res.contentMD5).equals(digest)) {
      throw new StorageUnavailableError(
        `azure PUT ${this.url}/${key}: service stored different bytes (MD5 ${Buffer.from(res.contentMD5).toString('hex')})`,
        { op: 'PUT', key, attempts: 1, retryable: true },
      );
    }
  }

  async read(key: string): Promise<Uint8Array> {
    return this.get(key);
  }

  private async get(key: string, limit?: number): Promise<Uint8Array> {
    const blob = this.blob(key);
    if (limit === 0) return this.head(key).then((h) => (h ? new Uint8Array(0) : this.missing(key)));
    return this.request('GET', key, 0, async ({ signal, extend }) => {
      const res = await blob.download(0, limit, { abortSignal: signal });
      if (res.contentLength) extend((res.contentLength / this.policy.bytesPerSecond) * 1000);
      const body = res.readableStreamBody as (NodeJS.ReadableStream & AsyncIterable<Uint8Array>) | undefined;
      if (!body) return new Uint8Array(0);
      return readBody(body as AsyncIterable<Uint8Array> & { destroy?: () => void }, signal, res.contentLength);
    });
  }

  private missing(key: string): never {
    throw new CheckpointNotFoundError(key, `not found: ${this.url}/${key}`);
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== null;
  }

  private async head(key: string): Promise<{ size: number; md5: string; mtimeMs: number; etag: string } | null> {
    const blob = this.blob(key);
    try {
      const p = await this.request('HEAD', key, 0, ({ signal }) => blob.getProperties({ abortSignal: signal }));
      return {
        size: p.contentLength ?? -1,
        md5: p.contentMD5 ? Buffer.from(p.contentMD5).toString('base64') : '',
        mtimeMs: p.lastModified?.getTime() ?? 0,
        etag: p.etag ?? '',
      };
    } catch (err) {
      if (err instanceof CheckpointNotFoundError) return null;
      throw err;
    }
  }

  /** One blob of this container as a StoredObject (for datasets): `key` is relative to the store's prefix. */
  object(key: string): StoredObject {
    return {
      url: `${this.url}/${key}`,
      stat: async () => {
        const head = await this.head(key);
        if (!head) return this.missing(key);
        return { size: head.size, version: `${head.etag}:${head.mtimeMs}` };
      },
      read: (limit) => this.get(key, limit),
      stream: () => this.stream(key),
    };
  }

  /** The blob from a HEAD's ETag on: ranged downloads with If-Match (see streamRequest). */
  private async *stream(key: string): AsyncGenerator<Uint8Array> {
    const head = await this.head(key);
    if (!head) return this.missing(key);
    const blob = this.blob(key);
    const req = { op: 'GET', key, bytes: 0, backend: 'azure', url: this.url };
    yield* streamRequest(this.policy, req, classifyAzure, head.size, async (offset, signal) => {
      const res = await blob.download(offset, undefined, {
        abortSignal: signal,
        conditions: head.etag ? { ifMatch: head.etag } : {},
        maxRetryRequests: 0, // a broken body is resumed by streamRequest, like every other failure
      });
      if (!res.readableStreamBody) throw Object.assign(new Error('download without a body'), { code: 'ECONNRESET' });
      return res.readableStreamBody as unknown as Body;
    });
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listDetailed(prefix)).map((o) => o.key);
  }

  async listDetailed(prefix: string): Promise<StoredObjectInfo[]> {
    const base = this.prefix ? `${this.prefix}/` : '';
    const out: StoredObjectInfo[] = [];
    let token: string | undefined;
    do {
      const page = await this.request('LIST', prefix, 0, async ({ signal }) => {
        const it = this.container
          .listBlobsFlat({ prefix: base + prefix, abortSignal: signal })
          .byPage({ maxPageSize: this.pageSize, continuationToken: token });
        return (await it.next()).value;
      });
      for (const b of page?.segment.blobItems ?? []) {
        if (!b.name.startsWith(base) || b.name.endsWith('/')) continue;
        out.push({
          key: b.name.slice(base.length),
          size: b.properties.contentLength ?? 0,
          mtimeMs: b.properties.lastModified?.getTime() ?? 0,
        });
      }
      token = page?.continuationToken || undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const blob = this.blob(key);
    await this.request('DELETE', key, 0, ({ signal }) => blob.deleteIfExists({ abortSignal: signal }));
  }
}

/**
 * DefaultAzureCredential, loaded only when a store uses Entra ID (the library and MSAL are large). Its chain reads the
 * process environment: AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET (or a certificate), workload identity
 * (AZURE_FEDERATED_TOKEN_FILE), managed identity (IMDS, App Service's IDENTITY_ENDPOINT), the Azure CLI's login.
 */
function defaultAzureCredential(): TokenCredential {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DefaultAzureCredential } = require('@azure/identity') as typeof import('@azure/identity');
  return new DefaultAzureCredential();
}

/**
 * AZURE_STORAGE_CONNECTION_STRING (Azurite's or an account's), else AZURE_STORAGE_ACCOUNT (or the account in an
 * https:// URL) with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, else Entra ID (DefaultAzureCredential);
 * DURABLE_TRAIN_AZURE_BLOB_ENDPOINT (the blob service's URL, for another cloud or an emulator),
 * DURABLE_TRAIN_AZURE_TIMEOUT_MS and DURABLE_TRAIN_AZURE_MAX_ATTEMPTS.
 */
export function azureOptionsFromEnv(
  env: NodeJS.ProcessEnv,
  account?: string,
): Omit<AzureStoreOptions, 'container' | 'prefix'> {
  const timing = {
    requestTimeoutMs: positiveEnv(env, 'DURABLE_TRAIN_AZURE_TIMEOUT_MS'),
    maxAttempts: positiveEnv(env, 'DURABLE_TRAIN_AZURE_MAX_ATTEMPTS'),
  };
  const conn = env.AZURE_STORAGE_CONNECTION_STRING || undefined;
  // A connection string for another account than the URL names would write elsewhere: only use it when it agrees.
  if (conn && (!account || new RegExp(`AccountName=${account}(;|$)`, 'i').test(conn))) {
    return { connectionString: conn, ...timing };
  }
  const accountName = account ?? (env.AZURE_STORAGE_ACCOUNT || undefined);
  return {
    accountName,
    accountUrl: env.DURABLE_TRAIN_AZURE_BLOB_ENDPOINT || undefined,
    accountKey: env.AZURE_STORAGE_KEY || undefined,
    sasToken: env.AZURE_STORAGE_SAS_TOKEN || undefined,
    ...timing,
  };
}

export function openAzureStore(loc: StorageLocation & { kind: 'az' }, env: NodeJS.ProcessEnv): AzureCheckpointStore {
  return new AzureCheckpointStore({
    container: loc.container,
    prefix: loc.prefix,
    ...azureOptionsFromEnv(env, loc.account),
  });
}

/** The blob az://CONTAINER/NAME (the location's prefix is the blob's name). */
export function openAzureObject(loc: StorageLocation & { kind: 'az' }, env: NodeJS.ProcessEnv): StoredObject {
  return new AzureCheckpointStore({
    container: loc.container,
    prefix: '',
    ...azureOptionsFromEnv(env, loc.account),
  }).object(loc.prefix);
}
