// The background persist in a thread of its own (checkpoint/persist-thread.ts): what it commits is exactly what a
// commit on the calling thread commits (same checkpoint id, same bytes, row patches, signatures), the blobs' buffers
// come back, and its failures come back as what they were (a diverged snapshot, a storage failure, a failpoint).
// Also the two pieces it relies on: the WebAssembly finite check and the O_DIRECT blob write.
import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CheckpointKeys,
  CheckpointManager,
  FsCheckpointStore,
  StorageUnavailableError,
  type CommitInput,
  type Manifest,
} from '../../checkpoint';
import { NonFiniteError } from '../../training/errors';
import { firstNonFiniteF32 } from '../../training/wasm/finite';
import { writeDirect } from '../../storage/direct-write';
import { exposedGc, movable, persistNice } from '../../checkpoint/persist-thread';
import { CliError } from '../../cli/common';
import { runWorker } from '../../cli/worker';
import { commitInput, f32 } from '../helpers/commit-input';

/** A checkpoint with a 2 MiB blob (moved to the thread, not copied) beside the helper's small ones. */
function bigInput(step: number, extra: Partial<CommitInput> = {}): CommitInput {
  const input = commitInput(step, extra);
  const big = new Float32Array(512 * 1024).map((_, i) => Math.sin(i + step));
  input.blobs.push({ name: 'big', dtype: 'float32', shape: [512, 1024], data: new Uint8Array(big.buffer) });
  return input;
}

/** A WebAssembly module's shared memory of `pages` (64 KiB each), as an optimizer's host arrays live in. */
function sharedMemory(pages: number): SharedArrayBuffer {
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: object) => { buffer: SharedArrayBuffer } } })
    .WebAssembly;
  return new wasm.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
}

const copyOf = (input: CommitInput): CommitInput => ({
  ...input,
  blobs: input.blobs.map((b) => ({ ...b, data: new Uint8Array(b.data) })),
});

describe('persist thread', function () {
  this.timeout(60_000);
  let root: string;
  const dirs = () => {
    const here = fs.mkdtempSync(path.join(root, 'here-'));
    const there = fs.mkdtempSync(path.join(root, 'there-'));
    return { here, there };
  };
  const threaded = (dir: string, o: ConstructorParameters<typeof CheckpointManager>[2] = {}) =>
    new CheckpointManager(new FsCheckpointStore(dir), 'run-1', { ...o, thread: { storage: `file://${dir}` } });
  const background = (m: CheckpointManager, input: CommitInput, previous?: Manifest) =>
    m.commitInBackground(input, { previous, finite: () => Promise.resolve() });

  before(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-persist-thread-'))));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('commits what a commit on this thread commits, and hands the buffers back', async () => {
    const { here, there } = dirs();
    const input = bigInput(3);
    const expected = await new CheckpointManager(new FsCheckpointStore(here), 'run-1').commit(copyOf(input));
    const before = input.blobs.map((b) => Buffer.from(b.data).toString('base64'));
    const m = threaded(there);
    const sent = input.blobs[2].data;
    const persisting = background(m, input);
    assert.equal(sent.byteLength, 0, 'the 2 MiB buffer moved to the thread (detached here), not copied');
    const got = await persisting;
    assert.equal(got.id, expected.id);
    assert.deepEqual(got, expected);
    // The views are usable again (the 2 MiB one came back from the thread), with the same bytes.
    assert.deepEqual(
      input.blobs.map((b) => Buffer.from(b.data).toString('base64')),
      before,
    );
    assert.equal(input.blobs[2].data.byteLength, 2 << 20);
    const loaded = await m.load(got.id);
    assert.deepEqual(Buffer.from(loaded.blobs.get('big')!), Buffer.from(input.blobs[2].data));
    assert.deepEqual(
      fs.readdirSync(path.join(there, 'run-1', 'blobs')).sort(),
      fs.readdirSync(path.join(here, 'run-1', 'blobs')).sort(),
    );
  });

  it('persists while this thread never yields (as during a long training step)', async () => {
    const { there } = dirs();
    const manifests = path.join(there, 'run-1', 'manifests');
    const durable = () => fs.existsSync(manifests) && fs.readdirSync(manifests).length === 1;
    const done = background(threaded(there), bigInput(8));
    const t0 = Date.now();
    while (!durable() && Date.now() - t0 < 10_000); // busy: no event loop turn on this thread
    assert.ok(durable(), 'the manifest was written while this thread was busy');
    assert.equal((await done).step, 8);
  });

  it('stores row patches against the previous checkpoint and signs as this thread would', async () => {
    const { here, there } = dirs();
    const keys = new CheckpointKeys([{ id: 'k1', key: randomBytes(32) }]);
    const mine = new CheckpointManager(new FsCheckpointStore(here), 'run-1', { keys });
    const theirs = threaded(there, { keys });
    const first = bigInput(1);
    const a = await mine.commit(copyOf(first));
    const b = await background(theirs, copyOf(first));
    assert.equal(b.id, a.id);
    // Step 2 changes two rows of `big`: a patch on the first checkpoint's blob.
    const second = bigInput(1, { step: 2 });
    const rows = new Float32Array(second.blobs[2].data.buffer);
    rows[5 * 1024] = 42;
    rows[400 * 1024 + 7] = -1;
    second.blobs[2].changes = { from: a.blobs[2].sha256, rows: Uint32Array.of(5, 400) };
    const a2 = await mine.commit(copyOf(second), { previous: a });
    const b2 = await background(theirs, second, b);
    assert.equal(b2.id, a2.id);
    assert.ok(b2.blobs[2].rows, 'stored as a patch');
    assert.ok(b2.signature);
    const loaded = await new CheckpointManager(new FsCheckpointStore(there), 'run-1', { keys }).load(b2.id);
    assert.equal(new Float32Array(loaded.blobs.get('big')!.slice().buffer)[5 * 1024], 42);
  });

  it('refuses a snapshot holding a NaN with a NonFiniteError naming it; nothing is committed', async () => {
    const { there } = dirs();
    const input = bigInput(4, { state: { step: 4, learningRate: 0.5 } });
    new Float32Array(input.blobs[2].data.buffer)[123_457] = NaN;
    const m = threaded(there);
    await assert.rejects(background(m, input), (err: unknown) => {
      assert.ok(err instanceof NonFiniteError, String(err));
      assert.equal(err.step, 4);
      assert.equal(err.learningRate, 0.5);
      assert.match(err.message, /^big\[123457\] is NaN at step 4 \(learning rate 0\.5\)/);
      return true;
    });
    assert.deepEqual(await m.list(), []);
  });

  it('fails as StorageUnavailableError with its code when the store cannot be written', async () => {
    const { there } = dirs();
    const file = path.join(there, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    const m = threaded(file);
    await assert.rejects(background(m, bigInput(5)), (err: unknown) => {
      assert.ok(err instanceof StorageUnavailableError, String(err));
      assert.equal(err.storageCode, 'ENOTDIR');
      assert.equal(err.retryable, true);
      return true;
    });
  });

  it('runs beforeManifest here, after the blobs and before the manifest; its failure commits nothing', async () => {
    const { there } = dirs();
    const seen: Array<{ step: number; blobs: number; manifests: number }> = [];
    const count = (sub: string) => fs.readdirSync(path.join(there, 'run-1', sub)).length;
    const m = threaded(there, {
      beforeManifest: (step) => {
        seen.push({
          step,
          blobs: count('blobs'),
          manifests: fs.existsSync(path.join(there, 'run-1', 'manifests')) ? count('manifests') : 0,
        });
        if (step === 7) throw new Error('failpoint: no manifest at step 7');
      },
    });
    const ok = await background(m, bigInput(6));
    assert.equal(ok.step, 6);
    await assert.rejects(background(m, bigInput(7)), /failpoint: no manifest at step 7/);
    assert.deepEqual(seen, [
      { step: 6, blobs: 3, manifests: 0 },
      { step: 7, blobs: 5, manifests: 1 }, // `b` is the same blob at both steps
    ]);
    assert.deepEqual(
      (await m.list()).map((c) => c.step),
      [6],
    );
  });

  it('shared memory it read is not kept alive by the thread once the training thread lets it go', async () => {
    // Lent arrays are views of an optimizer's shared memory; an idle thread that never collected kept every memory it
    // was sent (a disposed trainer's 0.7 GB for the wide-mlp). Four 128 MiB memories, each committed and dropped.
    const { there } = dirs();
    const m = threaded(there);
    const gc = exposedGc()!;
    const rss = () => process.memoryUsage().rss / 2 ** 20;
    gc();
    const start = rss();
    for (let k = 0; k < 4; k++) {
      const data = new Uint8Array(sharedMemory(2048));
      for (let i = 0; i < data.length; i += 4096) data[i] = k + 1; // every page resident
      const input = commitInput(10 + k);
      input.blobs.push({ name: 'lent', dtype: 'float32', shape: [data.length / 4], data });
      await background(m, input);
    }
    let grown = Infinity;
    for (let i = 0; i < 40 && grown >= 160; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
      grown = rss() - start;
    }
    assert.ok(grown < 160, `RSS grew by ${Math.round(grown)} MiB after 4 x 128 MiB were committed and dropped`);
  });
});

describe("the persist thread's priority (DURABLE_TRAIN_PERSIST_NICE)", () => {
  it('is 19 unless set to an integer from 0 to 19; anything else is refused naming the variable', () => {
    const nice = (v?: string) => persistNice(v === undefined ? {} : { DURABLE_TRAIN_PERSIST_NICE: v });
    assert.deepEqual([nice(), nice(''), nice('0'), nice('10'), nice(' 19 ')], [19, 19, 0, 10, 19]);
    for (const bad of ['20', '-1', '1.5', 'low'])
      assert.throws(
        () => nice(bad),
        new RegExp(`DURABLE_TRAIN_PERSIST_NICE must be an integer from 0 to 19.*"${bad}"`),
      );
  });

  it('a worker with a bad value stops at start, before it connects, saying so', async () => {
    process.env.DURABLE_TRAIN_PERSIST_NICE = 'lowest';
    try {
      await assert.rejects(runWorker(), (err: Error) => {
        assert.ok(err instanceof CliError, String(err));
        assert.match(
          err.message,
          /^worker: DURABLE_TRAIN_PERSIST_NICE must be an integer from 0 to 19 .*, got "lowest"/,
        );
        return true;
      });
    } finally {
      delete process.env.DURABLE_TRAIN_PERSIST_NICE;
    }
  });
});

describe('what moves to the persist thread', () => {
  it("moves a blob's own buffer of 64 KiB or more, copies pool slices, small buffers and views of larger ones", () => {
    const own = new Uint8Array(64 << 10);
    const big = new Uint8Array(1 << 20);
    const pooled = Buffer.from('a pool slice'); // shares Node's 8 KiB pool
    const small = new Uint8Array(100);
    assert.deepEqual(movable([own, pooled, big.subarray(0, 70_000), small, own]), [own.buffer]);
    assert.deepEqual(movable([big]), [big.buffer]);
  });
});

describe('the WebAssembly finite check', () => {
  it('finds the first NaN or infinity at any position, chunk edges and unaligned views included', () => {
    const n = (1 << 20) * 2 + 37; // over two of the module's chunks
    const bytes = new Uint8Array(n * 4 + 1).subarray(1); // not 4-byte aligned
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    for (let i = 0; i < n; i++) view.setFloat32(i * 4, i % 7 === 0 ? -3.4e38 : 1e-45 * i, true); // max, denormals
    assert.equal(firstNonFiniteF32(bytes), -1);
    for (const at of [0, 15, 16, 17, (1 << 20) - 1, 1 << 20, n - 20, n - 1])
      for (const bad of [NaN, Infinity, -Infinity]) {
        view.setFloat32(at * 4, bad, true);
        const later = at + 3 < n ? at + 3 : null; // a later one is not the first
        if (later !== null) view.setFloat32(later * 4, NaN, true);
        assert.equal(firstNonFiniteF32(bytes), at, `${bad} at ${at}`);
        view.setFloat32(at * 4, 1, true);
        if (later !== null) view.setFloat32(later * 4, 1, true);
      }
    assert.equal(firstNonFiniteF32(f32(1, -0, 0)), -1);
    assert.equal(firstNonFiniteF32(new Uint8Array(0)), -1);
  });
});

describe('O_DIRECT blob writes', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-direct-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('write every byte of blobs of any size, hashed as they go', () => {
    for (const size of [(1 << 20) + 1, 4 << 20, (9 << 20) + 3]) {
      const data = randomBytes(size);
      const file = path.join(dir, `b${size}`);
      const hash = createHash('sha256');
      assert.equal(writeDirect(file, data, hash, 4 << 20), true, 'this filesystem takes direct writes');
      assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
      assert.ok(Buffer.from(fs.readFileSync(file)).equals(data));
    }
  });

  it('writes shared memory (lent arrays) from where it is at a page, staged off a page; any slice after any other', () => {
    // A wasm module's shared memory, as the optimizer's arrays live in (its base is page-aligned).
    const memory = sharedMemory(160);
    new Uint8Array(memory).set(randomBytes(160 * 65536));
    const cases: Array<[string, Uint8Array, number]> = [
      ['whole pages at a page', new Uint8Array(memory, 4096, 3 << 20), 1 << 20],
      ['at a page, with a tail', new Uint8Array(memory, 8192, (2 << 20) + 100), 1 << 20],
      ['off a page', new Uint8Array(memory, 16, (1 << 20) + 4096), 1 << 20],
      ['a larger slice than before', new Uint8Array(memory, 4096, (8 << 20) + 5), 8 << 20],
    ];
    for (const [what, data, slice] of cases) {
      const file = path.join(dir, `shared-${cases.findIndex((c) => c[0] === what)}`);
      const hash = createHash('sha256');
      assert.equal(writeDirect(file, data, hash, slice), true, what);
      assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'), what);
      assert.ok(
        Buffer.from(fs.readFileSync(file)).equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength)),
        what,
      );
    }
  });

  it('a store with direct writes stores what a buffered one stores', async () => {
    const direct = new FsCheckpointStore(path.join(dir, 'direct'));
    direct.useDirectWrites();
    const buffered = new FsCheckpointStore(path.join(dir, 'buffered'));
    for (const size of [100, (2 << 20) + 5]) {
      const data = randomBytes(size);
      const [a, b] = [
        await direct.writeContentAddressed('r/blobs/', data),
        await buffered.writeContentAddressed('r/blobs/', data),
      ];
      assert.equal(a, b);
      assert.ok(Buffer.from(await direct.read(`r/blobs/${a}`)).equals(data));
    }
    assert.deepEqual(
      fs.readdirSync(path.join(dir, 'direct', 'r', 'blobs')).sort(),
      fs.readdirSync(path.join(dir, 'buffered', 'r', 'blobs')).sort(),
    );
  });
});
