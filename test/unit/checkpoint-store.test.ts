// The byte-level store contract (test/helpers/store-contract.ts) run against the real filesystem and a real S3
// server (SeaweedFS), plus the failure modes users hit: stalled endpoints, flaky endpoints, refused writes, leftovers of crashed writes.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CheckpointNotFoundError,
  CheckpointStoreError,
  FsCheckpointStore,
  openStore,
  sha256Hex,
} from '../../checkpoint';
import { S3CheckpointStore } from '../../storage/s3';
import { useS3Server, withFaultProxy, type S3TestServer } from '../helpers/s3-server';
import { dec, enc, storeContract, streamChecks, type Backend } from '../helpers/store-contract';
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'dt-ckpt-store-'));

const fsBackend: Backend = { name: 'fs', make: () => new FsCheckpointStore(tmp()) };

/** A store on its own prefix of the server's bucket; through another endpoint (a proxy), with 1 s deadlines. */
function s3Store(srv: S3TestServer, over: Partial<ConstructorParameters<typeof S3CheckpointStore>[0]> = {}) {
  return new S3CheckpointStore({
    bucket: srv.bucket,
    prefix: `t-${randomBytes(6).toString('hex')}/ckpt`,
    endpoint: srv.endpoint,
    region: srv.region,
    credentials: { accessKeyId: srv.accessKey, secretAccessKey: srv.secretKey },
    requestTimeoutMs: over.endpoint ? 1_000 : 10_000,
    ...over,
  });
}

function s3Backend(get: () => S3TestServer): Backend {
  return { name: 's3', make: () => s3Store(get()) };
}

describe('checkpoint stores', function () {
  describe('openStore', () => {
    it('opens file:// relative to baseDir and absolute', () => {
      const rel = openStore('file://.data/ck', '/srv/proj');
      assert.ok(rel instanceof FsCheckpointStore);
      assert.equal((rel as FsCheckpointStore).root, '/srv/proj/.data/ck');
      assert.equal(rel.url, 'file:///srv/proj/.data/ck');
      assert.equal((openStore('file:///var/ck', '/srv') as FsCheckpointStore).root, '/var/ck');
    });

    it('opens s3://bucket/prefix with settings from the environment', () => {
      const saved = { ...process.env };
      try {
        process.env.DURABLE_TRAIN_S3_ENDPOINT = 'http://127.0.0.1:1';
        process.env.AWS_REGION = 'eu-west-1';
        process.env.AWS_ACCESS_KEY_ID = 'k';
        process.env.AWS_SECRET_ACCESS_KEY = 's';
        const s = openStore('s3://my-bucket/some/prefix/');
        assert.ok(s instanceof S3CheckpointStore);
        assert.equal(s.url, 's3://my-bucket/some/prefix');
        assert.equal((s as S3CheckpointStore).bucket, 'my-bucket');
        assert.equal((s as S3CheckpointStore).prefix, 'some/prefix');
      } finally {
        process.env = saved;
      }
    });

    it('refuses unknown schemes and plain paths with a clear message', () => {
      assert.throws(() => openStore('ftp://b/p'), /unknown scheme ftp:\/\//);
      assert.throws(() => openStore('/tmp/x'), /not a URL: use file:\/\/PATH, s3:\/\/BUCKET\/PREFIX, gs:/);
      assert.throws(() => openStore('s3:///nobucket'), /has no bucket/);
    });
  });

  storeContract(fsBackend);

  describe('fs specifics', () => {
    it('never lists temp files, and sweeps only stale ones', async () => {
      const root = tmp();
      const store = new FsCheckpointStore(root);
      await store.writeAtomic('run/manifests/a.json', enc('A'));
      const stale = path.join(root, 'run', 'manifests', '.tmp.b.json.1.abc');
      const fresh = path.join(root, 'run', 'blobs', '.tmp.ff.1.def');
      fs.mkdirSync(path.dirname(fresh), { recursive: true });
      fs.writeFileSync(stale, 'partial');
      fs.writeFileSync(fresh, 'partial');
      const old = new Date(Date.now() - 3 * 3600_000);
      fs.utimesSync(stale, old, old);
      assert.deepEqual(await store.list('run/'), ['run/manifests/a.json']);
      assert.equal(await store.sweepTemp('run/', 3600_000), 1);
      assert.equal(fs.existsSync(stale), false);
      assert.equal(fs.existsSync(fresh), true);
    });

    it('writeContentAddressed hashes while writing: the right address, exact bytes, no temp file left', async () => {
      const root = tmp();
      const store = new FsCheckpointStore(root);
      const data = randomBytes(9 * 1024 * 1024 + 3); // three streaming slices, the last one short
      const sha = await store.writeContentAddressed('run/blobs/', data);
      assert.equal(sha, sha256Hex(data));
      assert.ok(fs.readFileSync(path.join(root, 'run', 'blobs', sha)).equals(data));
      assert.deepEqual(fs.readdirSync(path.join(root, 'run', 'blobs')), [sha]);
      const back = await store.readHashing(`run/blobs/${sha}`);
      assert.equal(back.sha256, sha);
      assert.ok(Buffer.from(back.data).equals(data));
      // Empty data: the empty file under the hash of nothing.
      const empty = await store.writeContentAddressed('run/blobs/', new Uint8Array(0));
      assert.equal(empty, sha256Hex(new Uint8Array(0)));
      assert.equal((await store.readHashing(`run/blobs/${empty}`)).data.byteLength, 0);
    });

    it('writeContentAddressed replaces a damaged copy at the address; readHashing reports what is there', async () => {
      const root = tmp();
      const store = new FsCheckpointStore(root);
      const data = randomBytes(5 * 1024 * 1024);
      const sha = sha256Hex(data);
      const file = path.join(root, 'run', 'blobs', sha);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, data.subarray(0, 1000)); // a truncated copy from some earlier crash
      const damaged = await store.readHashing(`run/blobs/${sha}`);
      assert.equal(damaged.data.byteLength, 1000);
      assert.notEqual(damaged.sha256, sha);
      assert.equal(await store.writeContentAddressed('run/blobs/', data), sha);
      assert.ok(fs.readFileSync(file).equals(data));
      await assert.rejects(store.readHashing('run/blobs/nope'), CheckpointNotFoundError);
      await assert.rejects(store.readHashing('run/blobs'), CheckpointNotFoundError); // a directory
    });

    it('a failed write rejects, leaves no temp file and no target', async () => {
      const root = tmp();
      const store = new FsCheckpointStore(root);
      fs.mkdirSync(path.join(root, 'run'));
      fs.writeFileSync(path.join(root, 'run', 'manifests'), 'a file where a directory must be');
      await assert.rejects(store.writeAtomic('run/manifests/a.json', enc('A')), (err: CheckpointStoreError) => {
        return ['ENOTDIR', 'EEXIST'].includes(err.storageCode ?? '');
      });
      assert.deepEqual(fs.readdirSync(path.join(root, 'run')), ['manifests']);
    });
  });

  describe('s3 against a real server (SeaweedFS)', function () {
    const server = useS3Server();

    storeContract(s3Backend(server));

    it('streams an object in chunks, resuming a body cut off or stalled where it stopped; a replaced one is refused', async () => {
      await withFaultProxy(server().endpoint, (proxy) =>
        streamChecks(s3Store(server(), { endpoint: proxy.endpoint, maxAttempts: 2, retryBaseDelayMs: 10 }), proxy),
      );
    });

    it('keeps prefixes apart in one bucket', async () => {
      const a = s3Backend(server).make();
      const b = s3Backend(server).make();
      await a.writeAtomic('run/x', enc('a'));
      assert.deepEqual(await b.list('run/'), []);
      assert.deepEqual(await a.list('run/'), ['run/x']);
    });

    it('a refused write (read-only credentials) rejects at once with the server reason', async () => {
      const ro = new S3CheckpointStore({
        bucket: server().bucket,
        prefix: 'ro',
        endpoint: server().endpoint,
        credentials: { accessKeyId: server().readOnlyAccessKey, secretAccessKey: server().readOnlySecretKey },
        maxAttempts: 3,
      });
      await assert.rejects(ro.writeAtomic('run/probe', enc('x')), (err: CheckpointStoreError) => {
        assert.ok(err instanceof CheckpointStoreError);
        assert.equal(err.details.attempts, 1, 'a permission error is not retried');
        assert.equal(err.details.status, 403);
        assert.match(err.message, /AccessDenied|Forbidden|403/);
        return true;
      });
    });

    it('wrong credentials and a missing bucket are errors, not empty results', async () => {
      const bad = new S3CheckpointStore({
        bucket: server().bucket,
        endpoint: server().endpoint,
        credentials: { accessKeyId: server().accessKey, secretAccessKey: 'wrong' },
      });
      await assert.rejects(bad.list('run/'), CheckpointStoreError);
      const ro = new S3CheckpointStore({
        bucket: 'no-such-bucket-here',
        endpoint: server().endpoint,
        credentials: { accessKeyId: server().readOnlyAccessKey, secretAccessKey: server().readOnlySecretKey },
      });
      await assert.rejects(ro.list('run/'), CheckpointStoreError);
    });
  });

  describe('s3 failure modes (local stub endpoints)', function () {
    const stub = (endpoint: string, extra: Partial<ConstructorParameters<typeof S3CheckpointStore>[0]> = {}) =>
      new S3CheckpointStore({
        bucket: 'b',
        prefix: 'p',
        endpoint,
        credentials: { accessKeyId: 'k', secretAccessKey: 's' },
        retryBaseDelayMs: 10,
        ...extra,
      });

    async function listen(server: net.Server): Promise<string> {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    }

    it('a stalled endpoint (accepts, never answers) fails after bounded attempts instead of hanging', async () => {
      let connections = 0;
      const sockets: net.Socket[] = [];
      const server = net.createServer((s) => {
        connections++;
        sockets.push(s);
      });
      const endpoint = await listen(server);
      try {
        const store = stub(endpoint, { requestTimeoutMs: 300, maxAttempts: 2 });
        for (const op of [
          () => store.read('run/x'),
          () => store.writeAtomic('run/x', enc('x'), { ifAbsent: true }),
          () => store.list('run/'),
        ]) {
          await assert.rejects(op(), (err: CheckpointStoreError) => {
            assert.ok(err instanceof CheckpointStoreError, String(err));
            assert.equal(err.details.attempts, 2);
            assert.equal(err.details.retryable, true);
            return true;
          });
        }
        assert.ok(connections >= 2);
      } finally {
        sockets.forEach((s) => s.destroy());
        server.close();
      }
    });

    it('a body that stalls half way is cut off and retried', async () => {
      let requests = 0;
      const server = http.createServer((req, res) => {
        requests++;
        res.writeHead(200, { 'content-length': '10', 'content-type': 'application/octet-stream' });
        res.write('01234'); // ...and never the rest
      });
      const endpoint = await listen(server);
      try {
        const store = stub(endpoint, { requestTimeoutMs: 300, maxAttempts: 2 });
        await assert.rejects(store.read('run/x'), CheckpointStoreError);
        assert.equal(requests, 2);
      } finally {
        server.closeAllConnections();
        server.close();
      }
    });

    it('transient 503s are retried until the request succeeds', async () => {
      let requests = 0;
      const server = http.createServer((req, res) => {
        requests++;
        if (requests <= 2) {
          res.writeHead(503, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0"?><Error><Code>ServiceUnavailable</Code><Message>busy</Message></Error>');
          return;
        }
        res.writeHead(200, { 'content-length': '5', 'content-type': 'application/octet-stream' });
        res.end('hello');
      });
      const endpoint = await listen(server);
      try {
        const store = stub(endpoint, { maxAttempts: 4 });
        assert.equal(dec(await store.read('run/x')), 'hello');
        assert.equal(requests, 3);
      } finally {
        server.close();
      }
    });

    it('falls back to check-then-put when the server does not implement If-None-Match', async () => {
      const seen: string[] = [];
      const objects = new Map<string, Buffer>();
      const server = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const key = (req.url ?? '').split('?')[0];
          seen.push(`${req.method}${req.headers['if-none-match'] ? ' if-none-match' : ''}`);
          if (req.method === 'PUT' && req.headers['if-none-match']) {
            res.writeHead(501, { 'content-type': 'application/xml' });
            res.end('<?xml version="1.0"?><Error><Code>NotImplemented</Code><Message>no</Message></Error>');
          } else if (req.method === 'PUT') {
            objects.set(key, Buffer.concat(chunks));
            res.writeHead(200);
            res.end();
          } else if (req.method === 'HEAD') {
            const o = objects.get(key);
            res.writeHead(o ? 200 : 404, o ? { 'content-length': String(o.length) } : {});
            res.end();
          } else {
            res.writeHead(404);
            res.end();
          }
        });
      });
      const endpoint = await listen(server);
      try {
        const store = stub(endpoint);
        await store.writeAtomic('run/m.json', enc('manifest'), { ifAbsent: true });
        assert.deepEqual(seen, ['PUT if-none-match', 'HEAD', 'PUT']);
        assert.equal(objects.get('/b/p/run/m.json')?.toString(), 'manifest');
      } finally {
        server.close();
      }
    });
  });
});
