// Real cloud storage emulators for tests, on loopback and free ports, started and stopped like SeaweedFS is in
// s3-server.ts: fake-gcs-server (Google Cloud Storage's JSON API; a Go program `npm run setup:test` builds into
// .tools/bin) and Azurite (Azure Blob Storage; the `azurite` devDependency), each in memory.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePorts, projectRoot, tail } from './s3-server';

export interface EmulatorProcess {
  /** Where clients connect (http://127.0.0.1:PORT). */
  endpoint: string;
  logFile: string;
  stop(): Promise<void>;
}

export interface GcsTestServer extends EmulatorProcess {
  bucket: string;
  /** The environment a worker or the CLI needs to reach it (STORAGE_EMULATOR_HOST, a project). */
  env: NodeJS.ProcessEnv;
}

export interface AzureTestServer extends EmulatorProcess {
  container: string;
  account: string;
  key: string;
  /** A connection string for `endpoint` (or another endpoint, such as a fault proxy in front of it). */
  connectionString(endpoint?: string, key?: string): string;
  env: NodeJS.ProcessEnv;
}

/** Azurite's well-known development account (public, documented; accepted only by the emulator). */
const AZURITE_ACCOUNT = 'devstoreaccount1';
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

function findExecutable(candidates: Array<string | undefined>, missing: string): string {
  for (const c of candidates) {
    if (c && fs.existsSync(c)) return c;
  }
  throw new Error(missing);
}

/** Spawns `cmd`, waits until `ready()` resolves true (polling), and returns a stopper; the log goes to a temp dir. */
async function startProcess(
  name: string,
  cmd: string,
  args: string[],
  endpoint: string,
  ready: () => Promise<boolean>,
  readyTimeoutMs = 30_000,
): Promise<EmulatorProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `dt-${name}-`));
  const logFile = path.join(dir, `${name}.log`);
  const log = fs.openSync(logFile, 'a');
  const child: ChildProcess = spawn(cmd, args, { cwd: dir, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exitPromise;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + readyTimeoutMs;
  let lastErr: unknown;
  for (;;) {
    if (exited) {
      const why = `${name} exited (${JSON.stringify(exited)}) before it was ready; log:\n${tail(logFile)}`;
      await stop();
      throw new Error(why);
    }
    try {
      if (await ready()) break;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const why = `${name} at ${endpoint} not ready: ${(lastErr as Error)?.message}; log:\n${tail(logFile)}`;
      await stop();
      throw new Error(why);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { endpoint, logFile, stop };
}

/** fake-gcs-server in memory on a free port, with one bucket. */
export async function startGcsServer(opts: { bucket?: string } = {}): Promise<GcsTestServer> {
  const root = projectRoot();
  const bin = findExecutable(
    [process.env.DURABLE_TRAIN_FAKE_GCS, path.join(root, '.tools', 'bin', 'fake-gcs-server')],
    'fake-gcs-server not found in .tools/bin: run `npm run setup:test` (it builds it with go install), ' +
      'or set DURABLE_TRAIN_FAKE_GCS to the binary.',
  );
  const [port] = await freePorts(1);
  const endpoint = `http://127.0.0.1:${port}`;
  const bucket = opts.bucket ?? 'durable-train-test';
  const args = [
    '-scheme',
    'http',
    '-host',
    '127.0.0.1',
    '-port',
    String(port),
    '-backend',
    'memory',
    '-public-host',
    `127.0.0.1:${port}`,
    '-external-url',
    endpoint,
    '-log-level',
    'warn',
  ];
  const proc = await startProcess('fake-gcs', bin, args, endpoint, async () => {
    const res = await fetch(`${endpoint}/storage/v1/b?project=test`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: bucket }),
    });
    return res.ok || res.status === 409;
  });
  return { ...proc, bucket, env: { STORAGE_EMULATOR_HOST: endpoint, GOOGLE_CLOUD_PROJECT: 'test' } };
}

/** A self-signed certificate for 127.0.0.1 (openssl), valid for a day: `cert` and `key` are PEM files in `dir`. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
    ].concat(['-addext', 'subjectAltName=IP:127.0.0.1']),
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/**
 * Creates a container over HTTPS trusting only `ca` (the test process was not started with NODE_EXTRA_CA_CERTS, and
 * the SDK's agent does not take a CA), with an account SAS signed by the emulator's key. Resolves with the status.
 */
async function createContainerOverTls(endpoint: string, container: string, ca: Buffer): Promise<number> {
  const sdk = await import('@azure/storage-blob');
  const sas = sdk
    .generateAccountSASQueryParameters(
      {
        expiresOn: new Date(Date.now() + 3_600_000),
        permissions: sdk.AccountSASPermissions.parse('c'),
        resourceTypes: sdk.AccountSASResourceTypes.parse('c').toString(),
        services: sdk.AccountSASServices.parse('b').toString(),
      },
      new sdk.StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    )
    .toString();
  const url = `${endpoint}/${AZURITE_ACCOUNT}/${container}?restype=container&${sas}`;
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'PUT', ca, headers: { 'x-ms-version': '2021-12-02' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Azurite's blob service in memory on a free port, with one container; shared-key authentication is checked. With
 * `tls` it serves HTTPS with that certificate, and with `oauth` it also takes Entra ID bearer tokens (its basic check:
 * a JWT whose issuer, audience and lifetime are Azure's form; signatures are not verified).
 */
export async function startAzurite(
  opts: { container?: string; tls?: { cert: string; key: string }; oauth?: boolean } = {},
): Promise<AzureTestServer> {
  const root = projectRoot();
  const bin = findExecutable(
    [path.join(root, 'node_modules', '.bin', 'azurite-blob')],
    'azurite-blob not found in node_modules/.bin: run `npm ci` (azurite is a devDependency)',
  );
  const [port] = await freePorts(1);
  const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const container = opts.container ?? 'durable-train-test';
  const connectionString = (ep = endpoint, key = AZURITE_KEY) =>
    `DefaultEndpointsProtocol=${opts.tls ? 'https' : 'http'};AccountName=${AZURITE_ACCOUNT};AccountKey=${key};BlobEndpoint=${ep}/${AZURITE_ACCOUNT};`;
  const args = [
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(port),
    '--inMemoryPersistence',
    '--skipApiVersionCheck',
    '--disableProductStyleUrl',
    '--silent',
    ...(opts.tls ? ['--cert', opts.tls.cert, '--key', opts.tls.key] : []),
    ...(opts.oauth ? ['--oauth', 'basic'] : []),
  ];
  // Imported here: the SDK is only needed by the tests that start Azurite.
  const { BlobServiceClient } = await import('@azure/storage-blob');
  const service = BlobServiceClient.fromConnectionString(connectionString(), { retryOptions: { maxTries: 1 } });
  const ca = opts.tls ? fs.readFileSync(opts.tls.cert) : undefined;
  const proc = await startProcess('azurite', bin, args, endpoint, async () => {
    if (ca) return [201, 409].includes(await createContainerOverTls(endpoint, container, ca));
    await service.getContainerClient(container).createIfNotExists();
    return true;
  });
  return {
    ...proc,
    container,
    account: AZURITE_ACCOUNT,
    key: AZURITE_KEY,
    connectionString,
    env: { AZURE_STORAGE_CONNECTION_STRING: connectionString() },
  };
}

/** The server for the calling describe block: started in its `before`, stopped in its `after`. */
function useServer<T extends EmulatorProcess>(start: () => Promise<T>): () => T {
  let server: T | undefined;
  before(async function () {
    this.timeout(60_000);
    server = await start();
  });
  after(async () => {
    await server?.stop();
  });
  return () => {
    if (!server) throw new Error('the emulator starts in before()');
    return server;
  };
}

export const useGcsServer = (): (() => GcsTestServer) => useServer(() => startGcsServer());
export const useAzurite = (): (() => AzureTestServer) => useServer(() => startAzurite());
