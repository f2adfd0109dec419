// "Storage unavailable" is not "checkpoint damaged or missing". A store directory replaced by a file, a store
// root that is gone, an S3 endpoint that stops answering: the stores throw StorageUnavailableError and the manager
// lets it through from list, load, verify, latestValid, commit and retention, instead of reporting checkpoints
// as missing or damaged (which would make a run fall back, fail as "no valid checkpoint", or start over). Once the
// storage is back, the same checkpoints are there and load.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CheckpointManager,
  CheckpointNotFoundError,
  FsCheckpointStore,
  NoValidCheckpointError,
  StorageUnavailableError,
  type CommitInput,
  type Manifest,
} from '../../checkpoint';
import { S3CheckpointStore } from '../../storage/s3';
import { startS3Server, type S3TestServer } from '../helpers/s3-server';

const RUN = 'run-outage';
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'dt-ckpt-outage-'));
const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);

function input(step: number, parent: Manifest | null): CommitInput {
  return {
    step,
    epoch: 0,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
    parent: parent ? { runId: parent.runId, id: parent.id } : null,
    blobs: [{ name: 'w', dtype: 'float32', shape: [3], data: f32([step, 1, 2]) }],
    state: { step },
    metrics: { loss: 1 / (step + 1) },
    fingerprints: { spec: 's' },
    backend: { name: 'cpu', version: '1' },
  };
}

/** Asserts a StorageUnavailableError (never NotFound, Corrupt or NoValidCheckpoint), optionally its code. */
function unavailable(retryable: boolean, codes?: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof StorageUnavailableError, `expected StorageUnavailableError, got ${String(err)}`);
    assert.equal(err.name, 'StorageUnavailableError');
    assert.equal(err.details.retryable, retryable, err.message);
    assert.equal(err.retryable, retryable);
    if (codes) assert.ok(codes.includes(err.storageCode ?? ''), `code ${err.storageCode} not in ${codes.join(', ')}`);
    return true;
  };
}

/** Every read path of the manager, and a commit, must report the outage and nothing else. */
async function assertOutage(mgr: CheckpointManager, ids: string[], check: (err: unknown) => boolean) {
  await assert.rejects(mgr.list(), check, 'list');
  await assert.rejects(mgr.list({ verify: true }), check, 'list --verify');
  await assert.rejects(mgr.latestValid(), check, 'latestValid');
  for (const id of ids) {
    await assert.rejects(mgr.readManifest(id), check, 'readManifest');
    await assert.rejects(mgr.load(id), check, 'load');
    await assert.rejects(mgr.verify(id), check, 'verify');
  }
  await assert.rejects(mgr.commit(input(99, null)), check, 'commit');
  await assert.rejects(mgr.pin(ids[0]), check, 'pin');
  await assert.rejects(mgr.applyRetention({ keepLatest: 1 }), check, 'applyRetention');
}

async function commitTwo(mgr: CheckpointManager): Promise<[Manifest, Manifest]> {
  const a = await mgr.commit(input(10, null));
  const b = await mgr.commit(input(20, a));
  return [a, b];
}

/** After the outage: every checkpoint is still there, intact, and the newest is the one to resume from. */
async function assertRecovered(mgr: CheckpointManager, committed: Manifest[]) {
  const newest = committed[committed.length - 1];
  const latest = await mgr.latestValid();
  assert.equal(latest?.manifest.id, newest.id);
  assert.deepEqual(latest?.skipped, []);
  assert.deepEqual(
    (await mgr.list({ verify: true })).map((c) => [c.id, c.valid]),
    committed.map((m) => [m.id, true]),
  );
  assert.deepEqual((await mgr.load(newest.id)).blobs.get('w'), f32([newest.step, 1, 2]));
}

describe('storage outage vs damaged checkpoints', function () {
  describe('fs store', () => {
    it('store root replaced by a regular file: every operation is StorageUnavailableError (ENOTDIR), then recovers', async () => {
      const root = path.join(tmp(), 'ckpt');
      const mgr = new CheckpointManager(new FsCheckpointStore(root), RUN, { blobGcGraceMs: 0 });
      const committed = await commitTwo(mgr);
      fs.renameSync(root, `${root}.away`);
      fs.writeFileSync(root, 'a file where the store directory was');

      await assertOutage(
        mgr,
        committed.map((m) => m.id),
        unavailable(true, ['ENOTDIR', 'EEXIST']),
      );
      await assert.rejects(mgr.store.read(`${RUN}/manifests/${committed[0].id}.json`), unavailable(true, ['ENOTDIR']));
      await assert.rejects(mgr.store.exists(`${RUN}/pins/x`), unavailable(true, ['ENOTDIR']));
      await assert.rejects(mgr.store.delete(`${RUN}/pins/x`), unavailable(true, ['ENOTDIR']));

      fs.rmSync(root);
      fs.renameSync(`${root}.away`, root);
      await assertRecovered(mgr, committed);
    });

    it('store root gone (unmounted, deleted): reads are StorageUnavailableError (ENOENT), not an empty run', async () => {
      const root = path.join(tmp(), 'ckpt');
      const mgr = new CheckpointManager(new FsCheckpointStore(root), RUN);
      const committed = await commitTwo(mgr);
      fs.renameSync(root, `${root}.away`);

      const check = unavailable(true, ['ENOENT']);
      await assert.rejects(mgr.list(), check);
      await assert.rejects(mgr.latestValid(), check);
      await assert.rejects(mgr.load(committed[1].id), check);
      await assert.rejects(mgr.verify(committed[1].id), check);

      fs.renameSync(`${root}.away`, root);
      await assertRecovered(mgr, committed);
    });

    it("the run's directory replaced by a regular file: StorageUnavailableError, then recovers", async () => {
      const root = tmp();
      const mgr = new CheckpointManager(new FsCheckpointStore(root), RUN, { blobGcGraceMs: 0 });
      const committed = await commitTwo(mgr);
      const runDir = path.join(root, RUN);
      fs.renameSync(runDir, `${runDir}.away`);
      fs.writeFileSync(runDir, 'not a directory');

      await assertOutage(
        mgr,
        committed.map((m) => m.id),
        unavailable(true, ['ENOTDIR', 'EEXIST']),
      );

      fs.rmSync(runDir);
      fs.renameSync(`${runDir}.away`, runDir);
      await assertRecovered(mgr, committed);
    });

    it('in a healthy store, missing is still missing and damage is still damage', async () => {
      const root = tmp();
      const store = new FsCheckpointStore(root);
      const mgr = new CheckpointManager(store, RUN);
      assert.equal(await mgr.latestValid(), null, 'a fresh run has no checkpoint');
      assert.deepEqual(await mgr.list(), []);
      await assert.rejects(store.read(`${RUN}/manifests/nope.json`), CheckpointNotFoundError);
      assert.equal(await store.exists(`${RUN}/pins/nope`), false);
      await store.delete(`${RUN}/pins/nope`);

      const [a, b] = await commitTwo(mgr);
      assert.deepEqual(await mgr.verify('step-000000099-00000000'), {
        id: 'step-000000099-00000000',
        ok: false,
        problems: [{ reason: 'checkpoint not found' }],
      });
      await assert.rejects(mgr.load('step-000000099-00000000'), CheckpointNotFoundError);
      // A missing blob of the newest checkpoint: damaged, so latestValid falls back to the older one.
      fs.rmSync(path.join(root, RUN, 'blobs', b.blobs[0].sha256));
      const v = await mgr.verify(b.id);
      assert.equal(v.ok, false);
      assert.match(v.problems[0].reason, /^missing/);
      const latest = await mgr.latestValid();
      assert.equal(latest?.manifest.id, a.id);
      assert.deepEqual(
        latest?.skipped.map((s) => s.id),
        [b.id],
      );
      // Every checkpoint damaged: NoValidCheckpointError, never null.
      fs.rmSync(path.join(root, RUN, 'blobs', a.blobs[0].sha256));
      await assert.rejects(mgr.latestValid(), NoValidCheckpointError);
    });
  });

  describe('s3 store (SeaweedFS behind a proxy that can cut the connection)', function () {
    let server: S3TestServer | undefined;
    let proxy: { endpoint: string; down: boolean; close(): void } | undefined;

    before(async function () {
      this.timeout(90_000);
      server = await startS3Server();
      proxy = await tcpProxy(new URL(server.endpoint));
    });
    after(async () => {
      proxy?.close();
      await server?.stop();
    });

    const storeVia = (endpoint: string) =>
      new S3CheckpointStore({
        bucket: server!.bucket,
        prefix: `o-${randomBytes(6).toString('hex')}`,
        endpoint,
        region: server!.region,
        credentials: { accessKeyId: server!.accessKey, secretAccessKey: server!.secretKey },
        requestTimeoutMs: 2_000,
        maxAttempts: 2,
        retryBaseDelayMs: 10,
      });

    it('an endpoint that resets every connection: StorageUnavailableError (retryable), then recovers', async () => {
      const mgr = new CheckpointManager(storeVia(proxy!.endpoint), RUN, { blobGcGraceMs: 0 });
      const committed = await commitTwo(mgr);
      proxy!.down = true;
      try {
        await assertOutage(
          mgr,
          committed.map((m) => m.id),
          unavailable(true),
        );
      } finally {
        proxy!.down = false;
      }
      await assertRecovered(mgr, committed);
    });

    it('refusals that need an operator are StorageUnavailableError with retryable false', async () => {
      const ro = new S3CheckpointStore({
        bucket: server!.bucket,
        endpoint: server!.endpoint,
        credentials: { accessKeyId: server!.readOnlyAccessKey, secretAccessKey: server!.readOnlySecretKey },
      });
      await assert.rejects(new CheckpointManager(ro, RUN).commit(input(1, null)), unavailable(false));
      const noBucket = new S3CheckpointStore({
        bucket: 'no-such-bucket-here',
        endpoint: server!.endpoint,
        credentials: { accessKeyId: server!.accessKey, secretAccessKey: server!.secretKey },
      });
      const mgr = new CheckpointManager(noBucket, RUN);
      await assert.rejects(mgr.list(), unavailable(false));
      await assert.rejects(mgr.load('step-000000001-00000000'), unavailable(false));
    });

    it('a server that is gone (stopped): StorageUnavailableError (retryable), not "no checkpoint"', async () => {
      const mgr = new CheckpointManager(storeVia(server!.endpoint), RUN);
      const committed = await commitTwo(mgr);
      await server!.stop();
      await assert.rejects(mgr.latestValid(), unavailable(true));
      await assert.rejects(mgr.load(committed[1].id), unavailable(true));
      await assert.rejects(mgr.verify(committed[1].id), unavailable(true));
    });
  });
});

/** A TCP proxy to `target`; while `down`, it resets every connection (new and open ones). */
async function tcpProxy(target: URL): Promise<{ endpoint: string; down: boolean; close(): void }> {
  const open = new Set<net.Socket>();
  const state = {
    endpoint: '',
    down: false,
    close: () => {
      open.forEach((s) => s.destroy());
      server.close();
    },
  };
  const server = net.createServer((client) => {
    if (state.down) {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.endpoint = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  let down = false;
  Object.defineProperty(state, 'down', {
    get: () => down,
    set: (v: boolean) => {
      down = v;
      if (v) open.forEach((s) => s.resetAndDestroy());
    },
  });
  return state;
}
