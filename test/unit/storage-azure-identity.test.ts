// Azure Blob Storage with Microsoft Entra ID: which credential a store uses for which settings, and, end to end,
// DefaultAzureCredential in a child process (as a worker or the CLI runs it) getting a token from a managed-identity
// endpoint (App Service style, faked locally) and using it against Azurite over HTTPS with its OAuth check on.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../cli/tools';
import { openStore } from '../../storage';
import { AzureCheckpointStore } from '../../storage/azure';
import { azureOptionsFromEnv } from '../../storage/azure';
import { selfSignedCert, startAzurite, type AzureTestServer } from '../helpers/cloud-emulators';
import { fakeIdentityEndpoint } from '../helpers/entra-identity';

/**
 * Store operations in a child process with exactly `env` (plus PATH): its JSON answer, or the error it printed. Async:
 * the identity endpoint answers from this process.
 */
async function inChild(env: NodeJS.ProcessEnv, url: string) {
  const storage = JSON.stringify(path.join(PROJECT_ROOT, 'dist', 'storage'));
  const script = `
const { openStore, openObject } = require(${storage});
(async () => {
  const store = openStore(${JSON.stringify(url)}, '/', process.env);
  await store.writeAtomic('run/manifests/m.json', Buffer.from('manifest'), { ifAbsent: true });
  await store.writeBlob('run/blobs/b', Buffer.from('blob'));
  const read = Buffer.from(await store.read('run/manifests/m.json')).toString();
  const list = await store.list('run/');
  let streamed = '';
  for await (const c of openObject(${JSON.stringify(url)} + '/run/blobs/b', '/', process.env).stream()) streamed += Buffer.from(c);
  await store.delete('run/blobs/b');
  console.log(JSON.stringify({ auth: store.auth, read, list, streamed, after: await store.list('run/') }));
})().catch((e) => {
  console.log(JSON.stringify({ error: { name: e.name, message: e.message, details: e.details } }));
  process.exitCode = 1;
});`;
  const child = spawn(process.execPath, ['-e', script], { env: { PATH: process.env.PATH, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
  const r = { status, stdout, stderr };
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as {
      auth?: string;
      read?: string;
      list?: string[];
      streamed?: string;
      after?: string[];
      error?: { name: string; message: string; details?: { status?: number; retryable?: boolean; code?: string } };
    };
  } catch {
    throw new Error(`child answered no JSON (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
}

describe('Azure Blob Storage with Entra ID (DefaultAzureCredential)', function () {
  this.timeout(120_000);

  it('the credential follows the settings: connection string, shared key, SAS, else Entra ID', () => {
    const auth = (env: NodeJS.ProcessEnv, account?: string) =>
      new AzureCheckpointStore({ container: 'ckpts', ...azureOptionsFromEnv(env, account) }).auth;
    const conn = 'DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=a2V5;EndpointSuffix=core.windows.net';
    assert.equal(auth({ AZURE_STORAGE_CONNECTION_STRING: conn, AZURE_STORAGE_ACCOUNT: 'acct1' }), 'connection-string');
    assert.equal(auth({ AZURE_STORAGE_ACCOUNT: 'acct1', AZURE_STORAGE_KEY: 'a2V5' }), 'shared-key');
    assert.equal(auth({ AZURE_STORAGE_ACCOUNT: 'acct1', AZURE_STORAGE_SAS_TOKEN: 'sv=2022&sig=x' }), 'sas');
    assert.equal(auth({ AZURE_STORAGE_ACCOUNT: 'acct1' }), 'entra-id');
    // The account of an https:// URL, with another account's connection string (not used for it): Entra ID.
    assert.equal(auth({ AZURE_STORAGE_CONNECTION_STRING: conn }, 'acct2'), 'entra-id');
    assert.equal(auth({ DURABLE_TRAIN_AZURE_BLOB_ENDPOINT: 'https://127.0.0.1:1/devstoreaccount1' }), 'entra-id');
    const store = openStore('https://acct2.blob.core.windows.net/ckpts/runs', '/', {}) as AzureCheckpointStore;
    assert.equal(store.container.url, 'https://acct2.blob.core.windows.net/ckpts');
    assert.throws(
      () => openStore('az://ckpts/runs', '/', {}),
      /AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT or DURABLE_TRAIN_AZURE_BLOB_ENDPOINT/,
    );
  });

  describe('end to end: a managed identity, Azurite over HTTPS with --oauth basic', function () {
    let dir: string;
    let azure: AzureTestServer;
    let cert: string;
    let identity: Awaited<ReturnType<typeof fakeIdentityEndpoint>>;
    const secret = 'identity-header-secret';

    before(async function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-entra-'));
      const tls = selfSignedCert(dir);
      cert = tls.cert;
      [azure, identity] = await Promise.all([startAzurite({ tls, oauth: true }), fakeIdentityEndpoint(secret)]);
    });
    after(async function () {
      await Promise.all([azure?.stop(), identity?.close()]);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    const env = (over: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
      NODE_EXTRA_CA_CERTS: cert,
      DURABLE_TRAIN_AZURE_BLOB_ENDPOINT: `${azure.endpoint}/${azure.account}`,
      DURABLE_TRAIN_AZURE_MAX_ATTEMPTS: '1',
      IDENTITY_ENDPOINT: identity.endpoint,
      IDENTITY_HEADER: secret,
      ...over,
    });

    it('with no key, SAS or connection string, the store writes, reads, lists, streams and deletes with the token', async () => {
      identity.setClaims({});
      const seen = identity.requests.length;
      const r = await inChild(env(), `az://${azure.container}/entra`);
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.deepEqual(r, {
        auth: 'entra-id',
        read: 'manifest',
        list: ['run/blobs/b', 'run/manifests/m.json'],
        streamed: 'blob',
        after: ['run/manifests/m.json'],
      });
      const asked = identity.requests.slice(seen);
      assert.ok(asked.length >= 1, 'the managed identity was asked for a token');
      assert.deepEqual(asked[0], { resource: 'https://storage.azure.com', header: secret });
    });

    it('a token for another audience is refused by the service (AuthenticationFailed, 403): an operator error, not retried', async () => {
      identity.setClaims({ aud: 'https://vault.azure.net' });
      const r = await inChild(env(), `az://${azure.container}/entra-wrong`);
      assert.equal(r.error?.name, 'StorageUnavailableError', JSON.stringify(r));
      assert.equal(r.error?.details?.retryable, false);
      assert.equal(r.error?.details?.status, 403);
      assert.match(r.error!.message, /AuthenticationFailed \(HTTP 403\)/);
    });

    it('a managed identity that refuses (wrong identity header) is named as the credential failing, not retried', async () => {
      identity.setClaims({});
      const r = await inChild(env({ IDENTITY_HEADER: 'wrong' }), `az://${azure.container}/entra-refused`);
      assert.equal(r.error?.name, 'StorageUnavailableError', JSON.stringify(r));
      assert.equal(r.error?.details?.retryable, false);
      assert.match(r.error?.details?.code ?? '', /AuthenticationError|CredentialUnavailableError/);
    });
  });
});
