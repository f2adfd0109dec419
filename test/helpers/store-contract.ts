// The byte-level store contract every backend must keep (fs, S3, Cloud Storage, Azure Blob), as one mocha suite a
// backend's test file runs against a fresh store per test on its real server.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CheckpointConflictError,
  CheckpointNotFoundError,
  FsCheckpointStore,
  StorageUnavailableError,
  type CheckpointStore,
  type StoredObject,
} from '../../storage';
import type { FaultProxy } from './s3-server';

export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export interface Backend {
  name: string;
  /** A fresh, empty store (own directory or own key prefix). */
  make(): CheckpointStore;
}

/**
 * Counts the object writes a store makes from now on: file replacements (fs, writeFileAtomic) or uploads (the cloud
 * stores' one `put`, each a single request to the server).
 */
export function spyWrites(store: CheckpointStore): () => number {
  let n = 0;
  const method = store instanceof FsCheckpointStore ? 'writeFileAtomic' : 'put';
  const target = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const write = target[method]?.bind(store);
  assert.equal(typeof write, 'function', `${store.constructor.name} writes objects through ${method}`);
  target[method] = (...args) => {
    n++;
    return write(...args);
  };
  return () => n;
}

export function storeContract(backend: Backend): void {
  describe(`store contract (${backend.name})`, function () {
    let store: CheckpointStore;
    beforeEach(() => {
      store = backend.make();
    });

    it('writes atomically, reads, lists recursively and sorted, deletes idempotently', async () => {
      await store.writeAtomic('run/manifests/b.json', enc('B'));
      await store.writeAtomic('run/manifests/a.json', enc('A'));
      await store.writeBlob('run/blobs/x', enc('blob'));
      await store.writeAtomic('other/manifests/c.json', enc('C'));
      assert.equal(dec(await store.read('run/manifests/a.json')), 'A');
      assert.deepEqual(await store.list('run/'), ['run/blobs/x', 'run/manifests/a.json', 'run/manifests/b.json']);
      assert.deepEqual(await store.list('run/manifests/'), ['run/manifests/a.json', 'run/manifests/b.json']);
      assert.deepEqual(await store.list('nothing/'), []);
      assert.equal(await store.exists('run/blobs/x'), true);
      assert.equal(await store.exists('run/blobs/y'), false);
      await store.delete('run/blobs/x');
      await store.delete('run/blobs/x');
      assert.equal(await store.exists('run/blobs/x'), false);
      assert.deepEqual(await store.list('run/blobs/'), []);
    });

    it('reading a missing key throws CheckpointNotFoundError', async () => {
      await assert.rejects(store.read('run/manifests/nope.json'), CheckpointNotFoundError);
    });

    it('writeAtomic replaces by default; with ifAbsent it accepts identical bytes and refuses different ones', async () => {
      await store.writeAtomic('k/probe', enc('one'));
      await store.writeAtomic('k/probe', enc('two'));
      assert.equal(dec(await store.read('k/probe')), 'two');
      await store.writeAtomic('k/m.json', enc('same'), { ifAbsent: true });
      await store.writeAtomic('k/m.json', enc('same'), { ifAbsent: true });
      await assert.rejects(store.writeAtomic('k/m.json', enc('diff'), { ifAbsent: true }), CheckpointConflictError);
      assert.equal(dec(await store.read('k/m.json')), 'same');
    });

    it('writeBlob keeps identical content (no second write) and repairs a same-size damaged copy', async () => {
      const writes = spyWrites(store);
      await store.writeBlob('r/blobs/h', enc('abcdef'));
      assert.equal(writes(), 1);
      await store.writeBlob('r/blobs/h', enc('abcdef'));
      assert.equal(writes(), 1, 'identical content is kept, not written again');
      assert.equal(dec(await store.read('r/blobs/h')), 'abcdef');
      await store.writeBlob('r/blobs/h', enc('abcdeX'));
      assert.equal(writes(), 2, 'different bytes under the same key are written');
      assert.equal(dec(await store.read('r/blobs/h')), 'abcdeX');
    });

    it('round-trips binary data of several MB exactly; lists its size and the time it was written', async () => {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      // The object's time is taken by the store's side (the file system, the storage server) while writeBlob runs: it
      // lies between these two readings of the same machine's clock, give or take a second (S3 keeps whole seconds,
      // the kernel stamps files from a coarse clock).
      const before = Date.now() - 1000;
      await store.writeBlob('r/blobs/big', data);
      const after = Date.now() + 1000;
      assert.ok(Buffer.from(await store.read('r/blobs/big')).equals(data));
      const info = await store.listDetailed!('r/blobs/');
      assert.equal(info.length, 1);
      assert.equal(info[0].size, data.byteLength);
      assert.ok(
        info[0].mtimeMs >= before && info[0].mtimeMs <= after,
        `mtime ${info[0].mtimeMs} in [${before}, ${after}]`,
      );
      if (store instanceof FsCheckpointStore) {
        // The file's own time, not the listing's: set it to a known past moment and read it back exactly.
        const file = path.join(store.root, 'r', 'blobs', 'big');
        fs.utimesSync(file, new Date(1_600_000_000_000), new Date(1_600_000_000_000));
        assert.equal((await store.listDetailed!('r/blobs/'))[0].mtimeMs, 1_600_000_000_000);
      }
    });

    it('rejects keys that could escape the root', async () => {
      await assert.rejects(store.read('../etc/passwd'), /invalid store key/);
      await assert.rejects(store.writeAtomic('a//b', enc('x')), /invalid store key/);
    });
  });
}

/** The requests for an object's bytes: one cut off, then one resuming it after the bytes received (not from 0). */
export function assertResumed(log: FaultProxy['log'], bodyPath: RegExp): void {
  const bodies = log.filter((r) => r.method === 'GET' && bodyPath.test(r.path));
  assert.equal(bodies.length, 2, JSON.stringify(bodies));
  assert.ok(bodies[0].fault, JSON.stringify(bodies));
  const from = Number(/^bytes=(\d+)-$/.exec(bodies[1].range ?? '')?.[1]);
  assert.ok(from > 0, `resumed after the bytes received: ${JSON.stringify(bodies)}`);
}

/** Every chunk of a stream, and the whole. */
export async function collect(stream: AsyncIterable<Uint8Array>): Promise<{ bytes: Buffer; chunks: number }> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return { bytes: Buffer.concat(parts), chunks: parts.length };
}

/**
 * Streaming reads of one object (a cloud store's `object(key).stream()`), through a fault proxy in front of its real
 * server (the store's deadline per attempt under 1.5 s, two attempts): a 3 MiB object comes back whole, in chunks; a
 * missing one is not found; a body cut off and a body that stalls are resumed where they stopped; an object
 * replaced between a cut and the resume is refused (ObjectChanged), never read as a mix of two versions.
 */
export async function streamChecks(
  store: CheckpointStore & { object(key: string): StoredObject },
  proxy: FaultProxy,
  /** The path of a request for the object's bytes (not its metadata). */
  bodyPath = /big\.bin/,
): Promise<void> {
  proxy.clear();
  const data = randomBytes(3 * 1024 * 1024 + 17);
  await store.writeBlob('data/big.bin', data);
  const whole = await collect(store.object('data/big.bin').stream());
  assert.ok(whole.bytes.equals(data), 'the bytes written');
  assert.ok(whole.chunks > 1, `in chunks (${whole.chunks})`);
  await assert.rejects(collect(store.object('data/none.bin').stream()), CheckpointNotFoundError);

  for (const fault of [{ cutBodyAfter: 1024 * 1024 }, { cutBodyAfter: 512 * 1024, stallMs: 1_500 }]) {
    const seen = proxy.log.length;
    const rule = proxy.add({ method: 'GET', path: bodyPath, limit: 1, ...fault });
    const got = await collect(store.object('data/big.bin').stream());
    assert.ok(got.bytes.equals(data), `whole after ${JSON.stringify(fault)}`);
    assert.equal(proxy.faults.filter((f) => f.rule === rule).length, 1, 'the fault was injected');
    assertResumed(proxy.log.slice(seen), bodyPath);
  }

  proxy.add({ method: 'GET', path: bodyPath, limit: 1, cutBodyAfter: 256 * 1024 });
  const it = store.object('data/big.bin').stream()[Symbol.asyncIterator]();
  assert.equal((await it.next()).done, false);
  await store.writeBlob('data/big.bin', randomBytes(data.byteLength));
  const drain = async () => {
    while (!(await it.next()).done);
  };
  await assert.rejects(drain(), (err: StorageUnavailableError) => {
    assert.ok(err instanceof StorageUnavailableError, String(err));
    assert.equal(err.storageCode, 'ObjectChanged');
    assert.equal(err.retryable, false);
    assert.match(
      err.message,
      /data\/big\.bin: it was (deleted or )?replaced after \d+ of 3145745 bytes while being read/,
    );
    return true;
  });
  proxy.clear();
}
