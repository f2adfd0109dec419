// Google Cloud Storage and Azure Blob stores against real emulators (fake-gcs-server, Azurite): the shared store
// contract with listings over several pages, objects for datasets, the misconfigurations an operator must hear about
// (missing bucket or container, wrong key), and faults injected by the S3 tests' proxy (5xx, stalls, resets).
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CheckpointNotFoundError,
  openObject,
  openStore,
  parseStorageUrl,
  StorageUnavailableError,
  type AzureStoreOptions,
  type CheckpointStore,
  type GcsStoreOptions,
} from '../../storage';
import { GcsCheckpointStore } from '../../storage/gcs';
import { AzureCheckpointStore } from '../../storage/azure';
import { clearDataCache, loadData, type FileDataSpec } from '../../training/data';
import { useAzurite, useGcsServer, type AzureTestServer, type GcsTestServer } from '../helpers/cloud-emulators';
import { withFaultProxy, type FaultProxy } from '../helpers/s3-server';
import { assertResumed, dec, enc, storeContract, streamChecks } from '../helpers/store-contract';

const fresh = () => `t-${randomBytes(6).toString('hex')}/ckpt`;

function gcsStore(srv: GcsTestServer, over: Partial<GcsStoreOptions> = {}): GcsCheckpointStore {
  return new GcsCheckpointStore({
    bucket: srv.bucket,
    prefix: fresh(),
    apiEndpoint: srv.endpoint,
    projectId: 'test',
    requestTimeoutMs: 5_000,
    pageSize: 2, // every listing of three or more keys crosses pages
    ...over,
  });
}

function azureStore(srv: AzureTestServer, over: Partial<AzureStoreOptions> = {}): AzureCheckpointStore {
  return new AzureCheckpointStore({
    container: srv.container,
    prefix: fresh(),
    connectionString: srv.connectionString(),
    requestTimeoutMs: 5_000,
    pageSize: 2,
    ...over,
  });
}

/** Objects for datasets: stat, whole and partial reads, a missing object named as not found. */
async function objectChecks(store: CheckpointStore, url: (key: string) => string, env: NodeJS.ProcessEnv) {
  await store.writeAtomic('data/rows.csv', enc('a,b\n1,2\n'));
  const obj = openObject(url('data/rows.csv'), '/', env);
  assert.equal((await obj.stat()).size, 8);
  assert.equal(dec(await obj.read()), 'a,b\n1,2\n');
  assert.equal(dec(await obj.read(3)), 'a,b');
  await assert.rejects(openObject(url('data/none.csv'), '/', env).stat(), CheckpointNotFoundError);
  await assert.rejects(openObject(url('data/none.csv'), '/', env).read(), CheckpointNotFoundError);
}

/** 5xx, a stall past the deadline and a reset, each once per request: the store's retries absorb all three. */
async function faultChecks(proxy: FaultProxy, store: CheckpointStore) {
  proxy.clear();
  proxy.add({ method: 'GET', status: 503, maxPerPath: 1 });
  proxy.add({ method: 'PUT', stallMs: 1_500, maxPerPath: 1 });
  proxy.add({ method: 'POST', stallMs: 1_500, maxPerPath: 1 });
  proxy.add({ method: 'DELETE', reset: true, maxPerPath: 1 });
  const before = proxy.faults.length;
  await store.writeAtomic('run/manifests/m.json', enc('manifest'), { ifAbsent: true });
  await store.writeBlob('run/blobs/b', enc('blob'));
  assert.equal(dec(await store.read('run/manifests/m.json')), 'manifest');
  assert.deepEqual(await store.list('run/'), ['run/blobs/b', 'run/manifests/m.json']);
  await store.delete('run/blobs/b');
  assert.deepEqual(await store.list('run/'), ['run/manifests/m.json']);
  const kinds = proxy.faults.slice(before).map((f) => f.fault.replace(/\d+ ms/, 'N ms'));
  assert.ok(kinds.includes('HTTP 503') && kinds.includes('stall N ms') && kinds.includes('reset'), kinds.join(', '));
  // A fault that outlasts the retries is an error naming the storage, retryable, never a hang or a "not found".
  proxy.clear();
  proxy.add({ status: 503 });
  await assert.rejects(store.read('run/manifests/m.json'), (err: StorageUnavailableError) => {
    assert.ok(err instanceof StorageUnavailableError, String(err));
    assert.equal(err.retryable, true);
    assert.equal(err.details.attempts, 2);
    assert.equal(err.details.status, 503);
    return true;
  });
  proxy.clear();
}

/**
 * A CSV dataset of about 1.5 MiB in the store, loaded through the fault proxy with its body cut off after 512 KiB:
 * the loader streams it (resumed where it stopped) to the same data and fingerprint as the same bytes on local disk.
 */
async function datasetThroughCut(
  store: CheckpointStore,
  url: string,
  proxy: FaultProxy,
  env: NodeJS.ProcessEnv,
  bodyPath = /rows\.csv/,
) {
  const lines = ['x1,x2,label'];
  for (let i = 0; i < 100_000; i++) lines.push(`${i},${(i * 7) % 11},${['red', 'green', 'blue'][i % 3]}`);
  const text = lines.join('\n') + '\n';
  await store.writeAtomic('data/rows.csv', enc(text));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-data-cloud-'));
  const saved = { ...process.env };
  try {
    fs.writeFileSync(path.join(dir, 'rows.csv'), text);
    const spec: FileDataSpec = { format: 'csv', path: url, label: 'label' };
    const local = await loadData({ ...spec, path: 'file://rows.csv' }, { seed: 4, baseDir: dir });
    clearDataCache();
    Object.assign(process.env, env);
    proxy.clear();
    const rule = proxy.add({ method: 'GET', path: bodyPath, limit: 1, cutBodyAfter: 512 * 1024 });
    const seen = proxy.log.length;
    const remote = await loadData(spec, { seed: 4, baseDir: dir });
    assert.equal(proxy.faults.filter((f) => f.rule === rule).length, 1, 'the body was cut off');
    assertResumed(proxy.log.slice(seen), bodyPath);
    assert.equal(remote.bytesRead, Buffer.byteLength(text));
    assert.equal(remote.fingerprint, local.fingerprint);
    assert.ok(Buffer.from(remote.train.x.buffer).equals(Buffer.from(local.train.x.buffer)));
    assert.deepEqual(remote.test.y, local.test.y);
  } finally {
    for (const k of Object.keys(env)) delete process.env[k];
    Object.assign(process.env, saved);
    clearDataCache();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('cloud stores on real emulators', function () {
  this.timeout(60_000);

  describe('Google Cloud Storage (fake-gcs-server)', function () {
    const server = useGcsServer();
    storeContract({ name: 'gcs', make: () => gcsStore(server()) });
    const viaProxy = (proxy: FaultProxy) =>
      gcsStore(server(), {
        apiEndpoint: proxy.endpoint,
        requestTimeoutMs: 1_000,
        maxAttempts: 2,
        retryBaseDelayMs: 10,
      });

    it('opens gs:// URLs from the environment (STORAGE_EMULATOR_HOST) and reads objects for datasets', async () => {
      const srv = server();
      const prefix = fresh();
      const store = openStore(`gs://${srv.bucket}/${prefix}`, '/', srv.env);
      assert.ok(store instanceof GcsCheckpointStore);
      await objectChecks(store, (k) => `gs://${srv.bucket}/${prefix}/${k}`, srv.env);
    });

    it('a missing bucket is an operator error, not an empty store or a missing checkpoint', async () => {
      const store = gcsStore(server(), { bucket: 'no-such-bucket-here' });
      for (const op of [
        () => store.list('run/'),
        () => store.read('run/x'),
        () => store.writeAtomic('run/x', enc('x')),
      ]) {
        await assert.rejects(op(), (err: StorageUnavailableError) => {
          assert.ok(err instanceof StorageUnavailableError, String(err));
          assert.equal(err.retryable, false);
          assert.equal(err.details.status, 404);
          return true;
        });
      }
    });

    it('5xx answers, stalls and resets through the fault proxy are retried; a lasting outage is an error', async function () {
      await withFaultProxy(server().endpoint, (proxy) => faultChecks(proxy, viaProxy(proxy)));
    });

    it('streams an object in chunks, resuming a body cut off or stalled where it stopped; a replaced one is refused', async function () {
      await withFaultProxy(server().endpoint, (proxy) => streamChecks(viaProxy(proxy), proxy, /alt=media/));
    });

    it('a CSV dataset on gs:// is streamed into the loader, resumed after a cut, as the same file on disk', async function () {
      const srv = server();
      const prefix = fresh();
      await withFaultProxy(srv.endpoint, async (proxy) => {
        // The Cloud Storage client's stream neither ends nor fails when its connection closes early: the idle
        // deadline (2 s here) notices the silence and the read resumes.
        const env = {
          STORAGE_EMULATOR_HOST: proxy.endpoint,
          GOOGLE_CLOUD_PROJECT: 'test',
          DURABLE_TRAIN_GCS_TIMEOUT_MS: '2000',
        };
        const url = `gs://${srv.bucket}/${prefix}/data/rows.csv`;
        await datasetThroughCut(gcsStore(srv, { prefix }), url, proxy, env, /alt=media/);
      });
    });
  });

  describe('Azure Blob Storage (Azurite)', function () {
    const server = useAzurite();
    storeContract({ name: 'azure', make: () => azureStore(server()) });
    const viaProxy = (proxy: FaultProxy) =>
      azureStore(server(), {
        connectionString: server().connectionString(proxy.endpoint),
        requestTimeoutMs: 1_000,
        maxAttempts: 2,
        retryBaseDelayMs: 10,
      });

    it('opens az:// URLs from the environment (AZURE_STORAGE_CONNECTION_STRING) and reads blobs for datasets', async () => {
      const srv = server();
      const prefix = fresh();
      const store = openStore(`az://${srv.container}/${prefix}`, '/', srv.env);
      assert.ok(store instanceof AzureCheckpointStore);
      await objectChecks(store, (k) => `az://${srv.container}/${prefix}/${k}`, srv.env);
    });

    it('a missing container and a wrong account key are operator errors, named and not retried', async () => {
      const srv = server();
      const missing = azureStore(srv, { container: 'no-such-container' });
      await assert.rejects(missing.list('run/'), (err: StorageUnavailableError) => {
        assert.ok(err instanceof StorageUnavailableError, String(err));
        assert.equal(err.retryable, false);
        assert.equal(err.storageCode, 'ContainerNotFound');
        return true;
      });
      await assert.rejects(missing.read('run/x'), StorageUnavailableError);
      const wrongKey = azureStore(srv, {
        connectionString: srv.connectionString(undefined, randomBytes(64).toString('base64')),
      });
      await assert.rejects(wrongKey.writeAtomic('run/x', enc('x')), (err: StorageUnavailableError) => {
        assert.ok(err instanceof StorageUnavailableError, String(err));
        assert.equal(err.retryable, false);
        assert.equal(err.details.status, 403);
        assert.equal(err.details.attempts, 1);
        return true;
      });
    });

    it('5xx answers, stalls and resets through the fault proxy are retried; a lasting outage is an error', async function () {
      await withFaultProxy(server().endpoint, (proxy) => faultChecks(proxy, viaProxy(proxy)));
    });

    it('streams an object in chunks, resuming a body cut off or stalled where it stopped; a replaced one is refused', async function () {
      await withFaultProxy(server().endpoint, (proxy) => streamChecks(viaProxy(proxy), proxy));
    });

    it('a CSV dataset on az:// is streamed into the loader, resumed after a cut, as the same file on disk', async function () {
      const srv = server();
      const prefix = fresh();
      await withFaultProxy(srv.endpoint, async (proxy) => {
        const env = { AZURE_STORAGE_CONNECTION_STRING: srv.connectionString(proxy.endpoint) };
        const url = `az://${srv.container}/${prefix}/data/rows.csv`;
        await datasetThroughCut(azureStore(srv, { prefix }), url, proxy, env);
      });
    });
  });

  it('parses gs://, az:// and Azure https:// URLs, refusing traversal prefixes and invalid names', () => {
    assert.deepEqual(parseStorageUrl('gs://my-bucket/runs/a/'), { kind: 'gs', bucket: 'my-bucket', prefix: 'runs/a' });
    assert.deepEqual(parseStorageUrl('az://ckpts/runs'), { kind: 'az', container: 'ckpts', prefix: 'runs' });
    assert.deepEqual(parseStorageUrl('https://acct1.blob.core.windows.net/ckpts/runs'), {
      kind: 'az',
      account: 'acct1',
      container: 'ckpts',
      prefix: 'runs',
    });
    assert.throws(() => parseStorageUrl('gs://b/../x'), /has no bucket|invalid bucket/);
    assert.throws(() => parseStorageUrl('gs://my-bucket/runs/../x'), /"\.\." segment/);
    assert.throws(() => parseStorageUrl('az://ckpts/a/../../b'), /"\.\." segment/);
    assert.throws(() => parseStorageUrl('az://Bad_Container/x'), /invalid container name "Bad_Container"/);
    assert.throws(() => parseStorageUrl('https://example.com/x'), /not an Azure Blob Storage URL/);
    assert.throws(() => openObject('gs://my-bucket'), /needs a bucket and an object name: use gs:\/\/BUCKET\/NAME/);
  });
});
