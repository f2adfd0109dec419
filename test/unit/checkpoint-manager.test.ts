// CheckpointManager: commit protocol, verification and fallback, save failures, retention. The same suite runs
// on the real filesystem (tmp dir) and on a real S3 server (SeaweedFS started here).
import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import {
  CheckpointCorruptError,
  CheckpointManager,
  CheckpointNotFoundError,
  FsCheckpointStore,
  NoValidCheckpointError,
  StorageUnavailableError,
  type BlobInput,
  type CheckpointStore,
  type CommitInput,
  type Manifest,
} from '../../checkpoint';
import { S3CheckpointStore } from '../../storage/s3';
import { useS3Server, type S3TestServer } from '../helpers/s3-server';

const RUN = 'run-1';
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'dt-ckpt-'));

interface Backend {
  name: string;
  /** A fresh, empty store, and a way to damage a stored object behind the store's back. */
  make(): { store: CheckpointStore; tamper(key: string, fn: (b: Buffer) => Buffer): Promise<void> };
  /** A store whose writes the storage refuses (a permission error). */
  refusing(): CheckpointStore;
}

const fsBackend: Backend = {
  name: 'fs',
  make() {
    const root = tmp();
    return {
      store: new FsCheckpointStore(root),
      async tamper(key, fn) {
        const file = path.join(root, ...key.split('/'));
        fs.writeFileSync(file, fn(fs.readFileSync(file)));
      },
    };
  },
  refusing() {
    // Root ignores permission bits, so use an error the kernel raises for everyone: the run's
    // directory is a regular file (ENOTDIR on every write below it).
    const root = tmp();
    fs.writeFileSync(path.join(root, RUN), 'not a directory');
    return new FsCheckpointStore(root);
  },
};

function s3Backend(get: () => S3TestServer): Backend {
  const make = (ro = false) => {
    const srv = get();
    return new S3CheckpointStore({
      bucket: srv.bucket,
      prefix: `m-${randomBytes(6).toString('hex')}`,
      endpoint: srv.endpoint,
      region: srv.region,
      credentials: ro
        ? { accessKeyId: srv.readOnlyAccessKey, secretAccessKey: srv.readOnlySecretKey }
        : { accessKeyId: srv.accessKey, secretAccessKey: srv.secretKey },
      requestTimeoutMs: 10_000,
    });
  };
  return {
    name: 's3',
    make() {
      const store = make();
      return {
        store,
        async tamper(key, fn) {
          const data = fn(Buffer.from(await store.read(key)));
          // A raw put, as bit rot or a stray tool would do it: no checks of ours involved.
          await store.client.send(
            new PutObjectCommand({ Bucket: store.bucket, Key: `${store.prefix}/${key}`, Body: data }),
          );
        },
      };
    },
    refusing: () => make(true),
  };
}

// ---- fixtures ----

const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function blobsFor(step: number): BlobInput[] {
  return [
    { name: 'dense/kernel', dtype: 'float32', shape: [2, 3], data: f32([step, 1, 2, 3, 4, 5]) },
    { name: 'dense/bias', dtype: 'float32', shape: [3], data: f32([0.5, 0.25, 0.125]) }, // never changes: shared
    { name: 'opt/adam/m/dense/kernel', dtype: 'float32', shape: [2, 3], data: f32([step / 10, 0, 0, 0, 0, 0]) },
    { name: 'mask', dtype: 'bool', shape: [4], data: new Uint8Array([1, 0, 1, step % 2]) },
  ];
}

function input(step: number, extra: Partial<CommitInput> = {}): CommitInput {
  return {
    step,
    epoch: Math.floor(step / 100),
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
    parent: null,
    blobs: blobsFor(step),
    state: { rng: { s: [1, 2, 3, step] }, position: { epoch: Math.floor(step / 100), batch: step % 100 }, lr: 0.001 },
    metrics: { loss: 1 / (step + 1), accuracy: step / 1000 },
    fingerprints: { spec: 'spec-fp', dataset: 'data-fp', model: 'model-fp' },
    backend: { name: 'cpu', version: '4.22.0' },
    reason: 'chunk-end',
    ...extra,
  };
}

/** Wraps a store and records calls; can fail one kind of write. */
function recording(inner: CheckpointStore, failOn?: 'writeBlob' | 'writeAtomic') {
  const log: string[] = [];
  const store: CheckpointStore = {
    url: inner.url,
    async writeBlob(key, data) {
      log.push(`blob:start ${key}`);
      if (failOn === 'writeBlob') throw Object.assign(new Error('EIO: simulated disk error'), { code: 'EIO' });
      await inner.writeBlob(key, data);
      log.push(`blob:done ${key}`);
    },
    async writeAtomic(key, data, opts) {
      log.push(`atomic:start ${key}`);
      if (failOn === 'writeAtomic')
        throw Object.assign(new Error('simulated crash before the commit point'), { code: 'EIO' });
      await inner.writeAtomic(key, data, opts);
      log.push(`atomic:done ${key}`);
    },
    read: (k) => inner.read(k),
    exists: (k) => inner.exists(k),
    list: (p) => inner.list(p),
    delete: (k) => inner.delete(k),
    listDetailed: inner.listDetailed?.bind(inner),
    sweepTemp: inner.sweepTemp?.bind(inner),
  };
  return { store, log };
}

function managerSuite(backend: Backend) {
  describe(`CheckpointManager (${backend.name})`, function () {
    let store: CheckpointStore;
    let tamper: (key: string, fn: (b: Buffer) => Buffer) => Promise<void>;
    let mgr: CheckpointManager;
    const gc0 = { blobGcGraceMs: 0 };

    beforeEach(() => {
      ({ store, tamper } = backend.make());
      mgr = new CheckpointManager(store, RUN, gc0);
    });

    const flipByte =
      (at = 0) =>
      (b: Buffer) => {
        const c = Buffer.from(b);
        c[at] ^= 0x01;
        return c;
      };

    describe('commit and load', () => {
      it('round-trips blobs, state and metadata exactly', async () => {
        const inp = input(120, { parent: { runId: RUN, id: 'step-000000100-deadbeef' } });
        const m = await mgr.commit(inp);
        assert.match(m.id, /^step-000000120-[0-9a-f]{8}$/);
        assert.equal(m.formatVersion, 1);
        assert.equal(m.runId, RUN);
        assert.deepEqual(
          m.blobs.map((b) => [b.name, b.size, b.sha256]),
          inp.blobs.map((b) => [b.name, b.data.byteLength, sha(b.data)]),
        );
        const { manifest, blobs } = await mgr.load(m.id);
        assert.deepEqual(manifest, m);
        assert.deepEqual(manifest.state, inp.state);
        for (const b of inp.blobs) assert.deepEqual(blobs.get(b.name), b.data, b.name);
        assert.deepEqual(await mgr.readManifest(m.id), m);
        const [summary] = await mgr.list();
        assert.deepEqual(
          { ...summary },
          {
            id: m.id,
            runId: RUN,
            step: 120,
            epoch: 1,
            createdAt: inp.createdAt,
            sizeBytes: 24 + 12 + 24 + 4,
            newBytes: 24 + 12 + 24 + 4,
            metrics: inp.metrics,
            parent: inp.parent,
            pinned: false,
            valid: null,
          },
        );
        assert.equal((await mgr.list({ verify: true }))[0].valid, true);
      });

      it('stores identical blobs once, within a commit and across commits', async () => {
        const same = f32([7, 7, 7]);
        const a = await mgr.commit({
          ...input(1),
          blobs: [
            { name: 'a', dtype: 'float32', shape: [3], data: same },
            { name: 'b', dtype: 'float32', shape: [3], data: same.slice() },
          ],
        });
        assert.equal(a.blobs[0].sha256, a.blobs[1].sha256);
        assert.deepEqual(await store.list(`${RUN}/blobs/`), [`${RUN}/blobs/${sha(same)}`]);
        const loaded = await mgr.load(a.id);
        assert.deepEqual(loaded.blobs.get('b'), same);

        await mgr.commit(input(2));
        await mgr.commit(input(3));
        // 4 blobs each, the bias shared by both: 1 + 4 + 3 objects.
        assert.equal((await store.list(`${RUN}/blobs/`)).length, 8);
      });

      it('the id is a function of the content: recommitting the same input is idempotent', async () => {
        const a = await mgr.commit(input(5));
        const b = await mgr.commit(input(5));
        assert.equal(a.id, b.id);
        const c = await mgr.commit(input(5, { metrics: { loss: 0.1 } }));
        assert.notEqual(a.id, c.id);
        assert.equal((await mgr.list()).length, 2);
      });

      it('writes every blob before the manifest, and the manifest last', async () => {
        const { store: rec, log } = recording(store);
        await new CheckpointManager(rec, RUN).commit(input(10));
        const firstAtomic = log.findIndex((l) => l.startsWith('atomic:start'));
        assert.equal(log.filter((l) => l.startsWith('atomic:')).length, 2);
        assert.equal(log.slice(firstAtomic).filter((l) => l.startsWith('blob:')).length, 0, log.join('\n'));
        assert.equal(log.slice(0, firstAtomic).filter((l) => l.startsWith('blob:done')).length, 4);
        assert.match(log[firstAtomic], new RegExp(`atomic:start ${RUN}/manifests/step-000000010-[0-9a-f]{8}\\.json$`));
      });

      it('a crash between blobs and manifest leaves no visible checkpoint (and GC reclaims the blobs)', async () => {
        const ok = await mgr.commit(input(1));
        const { store: crashing } = recording(store, 'writeAtomic');
        await assert.rejects(new CheckpointManager(crashing, RUN).commit(input(2)), /simulated crash/);
        assert.deepEqual(
          (await mgr.list()).map((c) => c.id),
          [ok.id],
        );
        assert.equal((await mgr.latestValid())!.manifest.id, ok.id);
        assert.equal((await store.list(`${RUN}/blobs/`)).length, 7, 'orphan blobs of the failed commit exist');
        // Young orphans are spared (a commit may still be in flight); past the grace period they go.
        const young = await new CheckpointManager(store, RUN).applyRetention({ keepLatest: 5 });
        assert.equal(young.blobsDeleted, 0);
        const res = await mgr.applyRetention({ keepLatest: 5 });
        assert.equal(res.blobsDeleted, 3);
        assert.deepEqual(res.deleted, []);
        await mgr.load(ok.id);
      });

      it("snapshots the caller's bytes and state on entry (later mutation cannot leak in)", async () => {
        const inp = input(3);
        const kernel = inp.blobs[0].data;
        const state = inp.state as { position: { batch: number } };
        const pending = mgr.commit(inp);
        kernel[0] ^= 0xff;
        state.position.batch = 999;
        const m = await pending;
        const { manifest, blobs } = await mgr.load(m.id);
        assert.deepEqual(blobs.get('dense/kernel'), blobsFor(3)[0].data);
        assert.equal((manifest.state as { position: { batch: number } }).position.batch, 3);
      });

      it('also copies Buffer inputs (whose slice() is a view, not a copy)', async () => {
        const inp = input(4);
        const buf = Buffer.from(inp.blobs[0].data);
        inp.blobs[0] = { ...inp.blobs[0], data: buf };
        const pending = mgr.commit(inp);
        buf.fill(0);
        const m = await pending;
        assert.deepEqual((await mgr.load(m.id)).blobs.get('dense/kernel'), blobsFor(4)[0].data);
      });

      it('rejects input that would not come back exactly', async () => {
        await assert.rejects(mgr.commit(input(1, { metrics: { loss: NaN } })), /metric loss is NaN/);
        await assert.rejects(mgr.commit(input(1, { state: { when: new Date(0) } })), /state\.when is a Date/);
        await assert.rejects(mgr.commit(input(1, { state: { rng: [1, undefined] } })), /state\.rng\[1\] is undefined/);
        await assert.rejects(
          mgr.commit(input(1, { blobs: [{ name: 'w', dtype: 'float32', shape: [4], data: new Uint8Array(12) }] })),
          /float32\[4\] needs 16 bytes, got 12/,
        );
        await assert.rejects(mgr.commit(input(-1)), /step -1/);
        await assert.rejects(mgr.commit(input(1, { createdAt: 'yesterday' })), /createdAt/);
        assert.deepEqual(await store.list(`${RUN}/`), []);
      });

      it('unknown dtypes (e.g. string tensors) are stored without a size check', async () => {
        const data = new TextEncoder().encode('["a","bc"]');
        const m = await mgr.commit({ ...input(1), blobs: [{ name: 'vocab', dtype: 'string', shape: [2], data }] });
        assert.deepEqual((await mgr.load(m.id)).blobs.get('vocab'), data);
      });
    });

    describe('save failures are never reported as success', () => {
      it('a storage that refuses writes rejects the commit', async () => {
        const refusing = backend.refusing();
        await assert.rejects(new CheckpointManager(refusing, RUN).commit(input(1)), (err: StorageUnavailableError) => {
          assert.match(`${err.storageCode} ${err.message}`, /ENOTDIR|EEXIST|AccessDenied|403/);
          return true;
        });
        if (backend.name === 'fs') {
          // The run's directory is a regular file: the storage itself is broken, which is not "no checkpoints".
          await assert.rejects(new CheckpointManager(refusing, RUN).list(), (err: Error) => {
            assert.ok(err instanceof StorageUnavailableError, `${err.name}: ${err.message}`);
            return true;
          });
        } else {
          // S3 answered "access denied" to the write; listing an empty prefix still answers: nothing was committed.
          assert.deepEqual(await new CheckpointManager(refusing, RUN).list(), []);
        }
      });

      it('a failing blob write rejects the commit and writes no manifest', async () => {
        const { store: failing, log } = recording(store, 'writeBlob');
        await assert.rejects(new CheckpointManager(failing, RUN).commit(input(1)), /EIO: simulated disk error/);
        assert.equal(log.filter((l) => l.startsWith('atomic:')).length, 0);
        assert.equal(await mgr.latestValid(), null);
      });
    });

    describe('damage is detected, named, and never loaded', () => {
      let c1: Manifest;
      let c2: Manifest;
      let c3: Manifest;
      beforeEach(async () => {
        c1 = await mgr.commit(input(100));
        c2 = await mgr.commit(input(200, { parent: { runId: RUN, id: c1.id } }));
        c3 = await mgr.commit(input(300, { parent: { runId: RUN, id: c2.id } }));
      });
      const blobOf = (m: Manifest, name: string) => `${RUN}/blobs/${m.blobs.find((b) => b.name === name)!.sha256}`;

      it('a flipped byte in a blob: verify names it, load throws, latestValid falls back and reports it', async () => {
        await tamper(blobOf(c3, 'dense/kernel'), flipByte(2));
        const v = await mgr.verify(c3.id);
        assert.equal(v.ok, false);
        assert.deepEqual(
          v.problems.map((p) => p.blob),
          ['dense/kernel'],
        );
        assert.match(v.problems[0].reason, /sha256 mismatch/);
        await assert.rejects(mgr.load(c3.id), (err: CheckpointCorruptError) => {
          assert.ok(err instanceof CheckpointCorruptError);
          assert.equal(err.checkpointId, c3.id);
          assert.equal(err.blob, 'dense/kernel');
          assert.match(err.reason, /sha256 mismatch/);
          return true;
        });
        const latest = await mgr.latestValid();
        assert.equal(latest!.manifest.id, c2.id);
        assert.deepEqual(
          latest!.skipped.map((s) => [s.id, s.problems[0].blob]),
          [[c3.id, 'dense/kernel']],
        );
        const listed = await mgr.list({ verify: true });
        assert.deepEqual(
          listed.map((c) => c.valid),
          [true, true, false],
        );
        assert.match(listed[2].problem!, /blob dense\/kernel: sha256 mismatch/);
        assert.deepEqual((await mgr.verify(c2.id)).problems, []);
      });

      it('a blob shared by several checkpoints damages all of them; the fallback says which', async () => {
        await tamper(blobOf(c3, 'dense/bias'), flipByte(0));
        await assert.rejects(mgr.latestValid(), (err: NoValidCheckpointError) => {
          assert.ok(err instanceof NoValidCheckpointError);
          assert.deepEqual(
            err.skipped.map((s) => s.id),
            [c3.id, c2.id, c1.id],
          );
          assert.match(err.message, /none verifies/);
          return true;
        });
      });

      it('a truncated manifest is listed invalid and skipped', async () => {
        await tamper(`${RUN}/manifests/${c3.id}.json`, (b) => b.subarray(0, Math.floor(b.length / 2)));
        const listed = await mgr.list();
        assert.equal(listed.length, 3);
        const bad = listed.find((c) => c.id === c3.id)!;
        assert.equal(bad.valid, false);
        assert.equal(bad.step, 300);
        assert.match(bad.problem!, /does not parse/);
        const latest = await mgr.latestValid();
        assert.equal(latest!.manifest.id, c2.id);
        assert.equal(latest!.skipped[0].id, c3.id);
        assert.match(latest!.skipped[0].problems[0].reason, /manifest: .*does not parse/);
        await assert.rejects(mgr.readManifest(c3.id), CheckpointCorruptError);
        assert.match((await mgr.verify(c3.id)).problems[0].reason, /does not parse/);
      });

      it('a manifest edited so that it still parses no longer matches its id', async () => {
        await tamper(`${RUN}/manifests/${c3.id}.json`, (b) =>
          Buffer.from(b.toString().replace('"chunk-end"', '"chunk-enD"')),
        );
        const v = await mgr.verify(c3.id);
        assert.equal(v.ok, false);
        assert.match(v.problems[0].reason, /content does not match its id/);
        assert.equal((await mgr.latestValid())!.manifest.id, c2.id);
      });

      it('a missing blob is named', async () => {
        await store.delete(blobOf(c3, 'opt/adam/m/dense/kernel'));
        const v = await mgr.verify(c3.id);
        assert.deepEqual(
          v.problems.map((p) => p.blob),
          ['opt/adam/m/dense/kernel'],
        );
        assert.match(v.problems[0].reason, /missing/);
        await assert.rejects(mgr.load(c3.id), (err: CheckpointCorruptError) => err.blob === 'opt/adam/m/dense/kernel');
      });

      it('a truncated blob is a size mismatch', async () => {
        await tamper(blobOf(c3, 'dense/kernel'), (b) => b.subarray(0, 10));
        assert.match((await mgr.verify(c3.id)).problems[0].reason, /size mismatch: expected 24 bytes, found 10/);
      });

      it('a manifest copied in from another run is not taken for one of ours', async () => {
        const other = new CheckpointManager(store, 'run-2');
        const bytes = await store.read(`${RUN}/manifests/${c3.id}.json`);
        await store.writeAtomic(`run-2/manifests/${c3.id}.json`, bytes);
        const listed = await other.list();
        assert.equal(listed[0].valid, false);
        assert.match(listed[0].problem!, /belongs to run run-1/);
      });

      it('unknown ids are not found', async () => {
        await assert.rejects(mgr.readManifest('step-000000999-00000000'), CheckpointNotFoundError);
        await assert.rejects(mgr.load('../../etc/passwd'), CheckpointNotFoundError);
        assert.deepEqual(await mgr.verify('step-000000999-00000000'), {
          id: 'step-000000999-00000000',
          ok: false,
          problems: [{ reason: 'checkpoint not found' }],
        });
      });
    });

    describe('retention', () => {
      /** Commits checkpoints at the given steps with testAccuracy values; returns their ids by step. */
      async function commitAll(
        m: CheckpointManager,
        steps: number[],
        acc: (step: number, i: number) => number = () => 0.5,
      ) {
        const ids = new Map<number, string>();
        for (const [i, step] of steps.entries()) {
          const c = await m.commit(
            input(step, { metrics: { testAccuracy: acc(step, i), testLoss: 1 - acc(step, i) } }),
          );
          ids.set(step, c.id);
        }
        return ids;
      }
      const keptSteps = async (m = mgr) => (await m.list()).map((c) => c.step);

      it('keepLatest keeps the newest N', async () => {
        await commitAll(mgr, [100, 200, 300, 400, 500, 600]);
        const res = await mgr.applyRetention({ keepLatest: 2 });
        assert.equal(res.deleted.length, 4);
        assert.deepEqual(await keptSteps(), [500, 600]);
        assert.deepEqual(res.kept.length, 2);
      });

      it('keepLatest does not count damaged checkpoints as latest', async () => {
        const ids = await commitAll(mgr, [100, 200, 300, 400]);
        const m400 = await mgr.readManifest(ids.get(400)!);
        await tamper(`${RUN}/blobs/${m400.blobs[0].sha256}`, flipByte(1));
        await mgr.applyRetention({ keepLatest: 2 });
        assert.deepEqual(await keptSteps(), [200, 300]);
        assert.equal((await mgr.latestValid())!.manifest.step, 300);
      });

      it('keepBest keeps the K best by a metric (max and min), plus the newest valid one', async () => {
        const accs = [0.3, 0.9, 0.5, 0.8, 0.4, 0.2];
        await commitAll(mgr, [100, 200, 300, 400, 500, 600], (_s, i) => accs[i]);
        await mgr.applyRetention({ keepBest: { k: 2, metric: 'testAccuracy', mode: 'max' } });
        assert.deepEqual(await keptSteps(), [200, 400, 600]);
        await mgr.applyRetention({ keepBest: { k: 1, metric: 'testLoss', mode: 'min' } });
        assert.deepEqual(await keptSteps(), [200, 600]);
      });

      it('keepBest skips damaged candidates and ignores checkpoints without the metric', async () => {
        const accs = [0.3, 0.9, 0.5, 0.8];
        const ids = await commitAll(mgr, [100, 200, 300, 400], (_s, i) => accs[i]);
        await mgr.commit(input(500, { metrics: { loss: 0.1 } }));
        const best = await mgr.readManifest(ids.get(200)!);
        await tamper(`${RUN}/blobs/${best.blobs[0].sha256}`, flipByte(0));
        await mgr.applyRetention({ keepBest: { k: 2, metric: 'testAccuracy', mode: 'max' } });
        assert.deepEqual(await keptSteps(), [300, 400, 500]);
      });

      it('keepEverySteps keeps multiples of N', async () => {
        await commitAll(mgr, [100, 200, 300, 400, 500, 600, 700]);
        await mgr.applyRetention({ keepEverySteps: 300 });
        assert.deepEqual(await keptSteps(), [300, 600, 700]);
      });

      it('policies combine: a checkpoint survives if any of them keeps it', async () => {
        const accs = [0.95, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
        await commitAll(mgr, [100, 200, 300, 400, 500, 600, 700, 800], (_s, i) => accs[i]);
        const res = await mgr.applyRetention({
          keepLatest: 2,
          keepBest: { k: 1, metric: 'testAccuracy', mode: 'max' },
          keepEverySteps: 400,
        });
        assert.deepEqual(await keptSteps(), [100, 400, 700, 800]);
        assert.equal(res.deleted.length, 4);
      });

      it('pins and protect keep checkpoints no policy keeps; unpin releases them', async () => {
        const ids = await commitAll(mgr, [100, 200, 300, 400]);
        await mgr.pin(ids.get(100)!);
        await mgr.pin(ids.get(100)!); // idempotent
        await mgr.applyRetention({ keepLatest: 1 }, [ids.get(200)!]);
        assert.deepEqual(await keptSteps(), [100, 200, 400]);
        assert.deepEqual(
          (await mgr.list()).map((c) => c.pinned),
          [true, false, false],
        );
        await mgr.unpin(ids.get(100)!);
        await mgr.applyRetention({ keepLatest: 1 });
        assert.deepEqual(await keptSteps(), [400]);
        await assert.rejects(mgr.pin('step-000000001-00000000'), CheckpointNotFoundError);
      });

      it('GC deletes blobs no remaining manifest references; shared blobs survive', async () => {
        await commitAll(mgr, [100, 200, 300]);
        // Per checkpoint a kernel and an optimizer slot of its own; bias and mask (even steps) are shared.
        assert.equal((await store.list(`${RUN}/blobs/`)).length, 2 + 3 * 2);
        const res = await mgr.applyRetention({ keepLatest: 1 });
        assert.equal(res.blobsDeleted, 4);
        const left = await store.list(`${RUN}/blobs/`);
        assert.equal(left.length, 4);
        assert.ok(left.includes(`${RUN}/blobs/${sha(f32([0.5, 0.25, 0.125]))}`), 'the shared bias blob is kept');
        const latest = await mgr.latestValid();
        await mgr.load(latest!.manifest.id);
      });

      it('GC is skipped while a manifest is unreadable (its blobs are unknown)', async () => {
        const ids = await commitAll(mgr, [100, 200, 300]);
        await tamper(`${RUN}/manifests/${ids.get(200)}.json`, (b) => b.subarray(0, 20));
        await mgr.pin(ids.get(200)!);
        const before = (await store.list(`${RUN}/blobs/`)).length;
        const res = await mgr.applyRetention({ keepLatest: 1 });
        assert.deepEqual(res.deleted, [ids.get(100)]);
        assert.match(res.gcSkipped!, /unreadable manifest/);
        assert.equal((await store.list(`${RUN}/blobs/`)).length, before);
      });

      it('an unreadable manifest that no rule keeps is deleted', async () => {
        const ids = await commitAll(mgr, [100, 200]);
        await tamper(`${RUN}/manifests/${ids.get(100)}.json`, (b) => b.subarray(0, 20));
        const res = await mgr.applyRetention({ keepLatest: 3 });
        assert.deepEqual(res.deleted, [ids.get(100)]);
        assert.equal(res.gcSkipped, undefined);
      });

      it('a policy with no rule keeps everything; bad numbers are refused', async () => {
        await commitAll(mgr, [100, 200, 300]);
        const res = await mgr.applyRetention({});
        assert.deepEqual(res.deleted, []);
        assert.equal(res.kept.length, 3);
        await assert.rejects(mgr.applyRetention({ keepLatest: -1 }), /keepLatest must be a non-negative integer/);
        await assert.rejects(mgr.applyRetention({ keepBest: { k: 1, metric: 'x', mode: 'up' as 'max' } }), /mode/);
      });

      it('keepBest stays right across restarts: fresh managers, best never evicted by newer worse ones, never more than K', async () => {
        const accs = [0.5, 0.9, 0.7, 0.95, 0.6, 0.65, 0.62, 0.94, 0.3];
        const policy = { keepLatest: 1, keepBest: { k: 2, metric: 'testAccuracy', mode: 'max' as const } };
        for (const [i, acc] of accs.entries()) {
          // A new process each time: new store object, new manager, nothing carried over in memory.
          const fresh = new CheckpointManager(reopen(store), RUN, gc0);
          await fresh.commit(input((i + 1) * 100, { metrics: { testAccuracy: acc } }));
          await new CheckpointManager(reopen(store), RUN, gc0).applyRetention(policy);
          const list = await new CheckpointManager(reopen(store), RUN).list();
          const seen = accs.slice(0, i + 1);
          const top2 = [...seen].sort((a, b) => b - a).slice(0, 2);
          const kept = list.map((c) => c.metrics.testAccuracy);
          for (const t of top2)
            assert.ok(kept.includes(t), `after ${i + 1} commits the best ${top2} are kept, got ${kept}`);
          assert.ok(kept.includes(acc), 'the newest is kept');
          assert.ok(list.length <= 3, `at most k + latest kept, got ${kept}`);
        }
        assert.deepEqual(
          (await mgr.list()).map((c) => c.metrics.testAccuracy),
          [0.95, 0.94, 0.3],
        );
      });
    });
  });
}

/** A second store object over the same storage, as a restarted process would open it. */
function reopen(store: CheckpointStore): CheckpointStore {
  if (store instanceof FsCheckpointStore) return new FsCheckpointStore(store.root);
  const s = store as S3CheckpointStore;
  return new S3CheckpointStore({ bucket: s.bucket, prefix: s.prefix, client: s.client });
}

describe('checkpoint manager', function () {
  managerSuite(fsBackend);

  describe('fs specifics', () => {
    it('a real write error between blobs and manifest (manifests dir unusable) rejects and leaves nothing visible', async () => {
      const root = tmp();
      fs.mkdirSync(path.join(root, RUN));
      fs.writeFileSync(path.join(root, RUN, 'manifests'), 'not a directory');
      const store = new FsCheckpointStore(root);
      const mgr = new CheckpointManager(store, RUN);
      await assert.rejects(mgr.commit(input(1)), (err: StorageUnavailableError) =>
        ['ENOTDIR', 'EEXIST'].includes(err.storageCode ?? ''),
      );
      assert.equal((await store.list(`${RUN}/blobs/`)).length, 4, 'the blobs were written');
      assert.deepEqual(await mgr.list(), []);
      assert.equal(await mgr.latestValid(), null);
    });

    it('leftover temp files of a crashed write are never listed', async () => {
      const root = tmp();
      const store = new FsCheckpointStore(root);
      const mgr = new CheckpointManager(store, RUN);
      const c = await mgr.commit(input(1));
      fs.writeFileSync(path.join(root, RUN, 'manifests', `.tmp.step-000000002-abcdef01.json.1.x`), '{"partial":');
      fs.writeFileSync(path.join(root, RUN, 'blobs', `.tmp.${'0'.repeat(64)}.1.y`), 'partial');
      assert.deepEqual(
        (await mgr.list()).map((s) => s.id),
        [c.id],
      );
      assert.equal((await mgr.latestValid())!.manifest.id, c.id);
      assert.equal((await store.list(`${RUN}/`)).filter((k) => k.includes('.tmp.')).length, 0);
    });

    it('the manifest file is readable JSON with the documented layout', async () => {
      const root = tmp();
      const mgr = new CheckpointManager(new FsCheckpointStore(root), RUN);
      const c = await mgr.commit(input(7));
      const file = JSON.parse(fs.readFileSync(path.join(root, RUN, 'manifests', `${c.id}.json`), 'utf8'));
      assert.deepEqual(Object.keys(file), [
        'formatVersion',
        'id',
        'runId',
        'step',
        'epoch',
        'createdAt',
        'reason',
        'parent',
        'metrics',
        'fingerprints',
        'backend',
        'blobs',
        'state',
      ]);
      for (const b of c.blobs) assert.ok(fs.existsSync(path.join(root, RUN, 'blobs', b.sha256)));
      await mgr.pin(c.id);
      assert.ok(fs.existsSync(path.join(root, RUN, 'pins', c.id)));
    });
  });

  describe('on a real S3 server (SeaweedFS)', function () {
    const server = useS3Server();
    managerSuite(s3Backend(server));
  });
});
