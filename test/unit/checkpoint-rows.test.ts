// Incremental checkpoints below tensor granularity (checkpoint/rows.ts): a tensor whose rows changed here and there
// is stored as the previous checkpoint's chain plus a patch of just those rows. In process, on a real filesystem
// store: the patch format, the chain's bounds, verification of every piece and of the result, garbage collection
// that keeps a chain's base, and byte counts of real training (an embedding table trained with SGD on scattered ids,
// a fine-tune with frozen layers) through the chunk's two-phase commits.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChunkCommits } from '../../activities/chunk/commits';
import { snapshotOf, spareOfLoaded } from '../../activities/commit';
import { TrainingMetrics } from '../../activities/metrics';
import {
  CheckpointManager,
  FsCheckpointStore,
  type BlobInput,
  type CommitInput,
  type Manifest,
  type ManifestBlob,
} from '../../checkpoint';
import { decodeManifest, encodeManifest } from '../../checkpoint/codec';
import {
  applyPatch,
  assemble,
  encodePatch,
  MAX_PATCHES,
  PATCH_BUDGET,
  parseChain,
  planRows,
} from '../../checkpoint/rows';
import { validateSpec } from '../../spec';
import { Trainer } from '../../training';
import { initBackend } from '../../training/backend';
import { rowsThatDiffer } from '../../training/snapshot-io';
import { parseScrape } from '../helpers/prom-scrape';

const ROWS = 64;
const WIDTH = 8; // float32 per row

function table(fill: (r: number, c: number) => number): Uint8Array {
  const a = new Float32Array(ROWS * WIDTH);
  for (let r = 0; r < ROWS; r++) for (let c = 0; c < WIDTH; c++) a[r * WIDTH + c] = fill(r, c);
  return new Uint8Array(a.buffer);
}

const input = (step: number, data: Uint8Array, changes?: BlobInput['changes']): CommitInput => ({
  step,
  epoch: 0,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
  parent: null,
  blobs: [
    { name: 'emb', dtype: 'float32', shape: [ROWS, WIDTH], data, ...(changes ? { changes } : {}) },
    { name: 'bias', dtype: 'float32', shape: [WIDTH], data: new Uint8Array(new Float32Array(WIDTH).fill(step).buffer) },
  ],
  state: { step },
  metrics: {},
  fingerprints: {},
  backend: { name: 'cpu', version: '0' },
});

describe('row patches: incremental checkpoints', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-rows-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a patch holds just the named rows, applies back to the same bytes, and a malformed one is refused', () => {
    const a = table((r, c) => r * 100 + c);
    const b = table((r, c) => (r === 3 || r === 40 ? -1 - c : r * 100 + c));
    const rows = rowsThatDiffer(a, b, ROWS);
    assert.deepEqual(Array.from(rows!), [3, 40]);
    assert.deepEqual(Array.from(rowsThatDiffer(a, a.slice(), ROWS)!), []);
    // Over half the rows changed: unknown (stored whole).
    assert.equal(
      rowsThatDiffer(
        a,
        table((r) => -r - 1),
        ROWS,
      ),
      undefined,
    );
    const patch = encodePatch(b, WIDTH * 4, rows!);
    assert.equal(patch.byteLength, 16 + 2 * (4 + WIDTH * 4));
    const out = a.slice();
    applyPatch(out, patch);
    assert.deepEqual(out, b);
    const bad = patch.slice();
    new DataView(bad.buffer).setUint32(16, 41, true); // row 41 before row 40: out of order
    assert.throws(() => applyPatch(a.slice(), bad), /row 40 out of order/);
    assert.throws(() => applyPatch(a.slice(), patch.subarray(0, patch.byteLength - 1)), /should be \d+ bytes/);
    assert.throws(() => applyPatch(new Uint8Array(ROWS * WIDTH * 4 + 4), patch), /do not divide/);
  });

  describe('the rules, piece by piece (pure)', () => {
    const sha = (c: string) => c.repeat(64);
    const entry = (o: Partial<ManifestBlob> = {}): ManifestBlob => ({
      name: 'emb',
      dtype: 'float32',
      shape: [ROWS, WIDTH],
      sha256: sha('a'),
      size: ROWS * WIDTH * 4,
      ...o,
    });
    const blobIn = (rows: number[], o: Partial<BlobInput> = {}): BlobInput => ({
      name: 'emb',
      dtype: 'float32',
      shape: [ROWS, WIDTH],
      data: table((r, c) => r + c),
      changes: { from: sha('a'), rows: Uint32Array.from(rows) },
      ...o,
    });
    const patchOf = (n: number) => 16 + n * (4 + WIDTH * 4);

    it('stores whole what it cannot patch safely', () => {
      const whole = { kind: 'whole' };
      assert.deepEqual(planRows(blobIn([1], { changes: undefined }), sha('b'), entry()), whole);
      assert.deepEqual(planRows(blobIn([1]), sha('b'), undefined), whole);
      assert.deepEqual(planRows(blobIn([1]), sha('b'), entry({ sha256: sha('c') })), whole, 'changes from another');
      assert.deepEqual(planRows(blobIn([1]), sha('b'), entry({ dtype: 'int32' })), whole);
      assert.deepEqual(planRows(blobIn([1]), sha('b'), entry({ size: 8 })), whole);
      assert.deepEqual(
        planRows(blobIn([1]), sha('b'), entry({ shape: [WIDTH, ROWS] })),
        whole,
        'same size, rows differ',
      );
      assert.deepEqual(planRows(blobIn([1]), sha('b'), entry({ shape: [ROWS * WIDTH] })), whole, 'another rank');
      const flat = blobIn([1], { shape: [ROWS * WIDTH] });
      assert.deepEqual(planRows(flat, sha('b'), entry({ shape: [ROWS * WIDTH] })), whole, 'rank 1: no rows');
      const one = blobIn([0], { shape: [1, ROWS * WIDTH] });
      assert.deepEqual(planRows(one, sha('b'), entry({ shape: [1, ROWS * WIDTH] })), whole, 'a single row');
      assert.deepEqual(planRows(blobIn([]), sha('b'), entry()), whole, 'changed, yet no row named');
    });

    it('keeps an unchanged entry, and patches on the previous chain or on the previous whole blob', () => {
      const before = entry({ rows: { base: { sha256: sha('d'), size: ROWS * WIDTH * 4 }, patches: [] } });
      assert.deepEqual(planRows(blobIn([1]), sha('a'), before), { kind: 'same', entry: before });
      const onWhole = planRows(blobIn([1, 5]), sha('b'), entry());
      assert.equal(onWhole.kind, 'patch');
      if (onWhole.kind !== 'patch') return;
      assert.deepEqual(onWhole.chain, { base: { sha256: sha('a'), size: ROWS * WIDTH * 4 }, patches: [] });
      assert.equal(onWhole.patch.byteLength, patchOf(2));
      const chained = { base: { sha256: sha('d'), size: ROWS * WIDTH * 4 }, patches: [{ sha256: sha('e'), size: 40 }] };
      const onChain = planRows(blobIn([1]), sha('b'), entry({ rows: chained }));
      assert.equal(onChain.kind, 'patch');
      if (onChain.kind === 'patch') assert.deepEqual(onChain.chain, chained);
    });

    it('bounds a chain at MAX_PATCHES patches and at PATCH_BUDGET times its base, exactly', () => {
      const base = { sha256: sha('d'), size: ROWS * WIDTH * 4 };
      const piece = (size: number) => ({ sha256: sha('e'), size });
      const withPatches = (sizes: number[]) => entry({ rows: { base, patches: sizes.map(piece) } });
      assert.equal(planRows(blobIn([1]), sha('b'), withPatches(Array(MAX_PATCHES - 1).fill(16))).kind, 'patch');
      assert.equal(planRows(blobIn([1]), sha('b'), withPatches(Array(MAX_PATCHES).fill(16))).kind, 'whole');
      // The patches so far plus this one (one row) against 1.5 times the base: equal is still a patch, one byte more not.
      const room = PATCH_BUDGET * base.size - patchOf(1);
      assert.equal(planRows(blobIn([1]), sha('b'), withPatches([room])).kind, 'patch');
      assert.equal(planRows(blobIn([1]), sha('b'), withPatches([room + 1])).kind, 'whole');
      assert.equal(planRows(blobIn([1]), sha('b'), withPatches([room / 2, room / 2 + 1])).kind, 'whole');
    });

    it('refuses malformed patches and chains with a reason', () => {
      const data = table(() => 1);
      const good = encodePatch(data, WIDTH * 4, Uint32Array.of(2));
      const edit = (at: number, v: number) => {
        const p = good.slice();
        new DataView(p.buffer).setUint32(at, v, true);
        return p;
      };
      assert.throws(() => applyPatch(data.slice(), good.subarray(0, 16)), /should be \d+ bytes/);
      assert.throws(() => applyPatch(data.slice(), good.subarray(0, 15)), /15 bytes is shorter than its header/);
      assert.throws(() => applyPatch(data.slice(), edit(0, 1)), /not a row patch \(version 1\)/);
      assert.throws(() => applyPatch(data.slice(), edit(4, 2)), /not a row patch \(version 1\)/);
      assert.throws(() => applyPatch(data.slice(), edit(8, 0)), /rows of 0 bytes do not divide/);
      assert.throws(
        () => applyPatch(data.slice(), edit(16, ROWS)),
        new RegExp(`row ${ROWS} out of order or past ${ROWS}`),
      );
      applyPatch(data.slice(), edit(16, ROWS - 1)); // the last row is a row
      const two = encodePatch(data, WIDTH * 4, Uint32Array.of(3, 4));
      const dup = two.slice();
      new DataView(dup.buffer).setUint32(20, 3, true);
      assert.throws(() => applyPatch(data.slice(), dup), /row 3 out of order/);

      const b = entry({ rows: { base: { sha256: sha('d'), size: ROWS * WIDTH * 4 }, patches: [] } });
      assert.equal(assemble({ ...b, rows: undefined }, [data]), data, 'a whole blob is its one piece');
      assert.throws(() => assemble(b, [data.subarray(4)]), /row chain base is \d+ bytes, the blob \d+/);
      const patched = assemble(b, [
        data,
        encodePatch(
          table(() => 7),
          WIDTH * 4,
          Uint32Array.of(0),
        ),
      ]);
      assert.deepEqual(Array.from(new Float32Array(patched.buffer, 0, WIDTH + 1)), [...Array(WIDTH).fill(7), 1]);

      const piece = (v: unknown, what: string) => {
        if (typeof v !== 'object' || v === null) throw new Error(`${what}: not a piece`);
        return v as { sha256: string; size: number };
      };
      for (const raw of ['x', null, [1]])
        assert.throws(() => parseChain(raw, 'blob t', piece), /^Error: blob t: rows is not an object$/);
      for (const patches of [undefined, [], Array(MAX_PATCHES + 1).fill({})])
        assert.throws(
          () => parseChain({ base: {}, patches }, 'blob t', piece),
          /blob t: rows\.patches is not a list of 1 to 16 pieces/,
        );
      assert.throws(
        () => parseChain({ base: 1, patches: [{}] }, 'blob t', piece),
        /^Error: blob t: rows\.base: not a piece$/,
      );
      assert.throws(
        () => parseChain({ base: {}, patches: [{}, 2] }, 'blob t', piece),
        /^Error: blob t: rows\.patches\[1\]: not a piece$/,
      );
      assert.equal(
        parseChain({ base: {}, patches: Array(MAX_PATCHES).fill({}) }, 'blob t', piece).patches.length,
        MAX_PATCHES,
      );
    });
  });

  it('stores changed rows as a patch on the previous chain, reads back bitwise, and bounds the chain', async () => {
    const store = new FsCheckpointStore(path.join(dir, 'chain'));
    const m = new CheckpointManager(store, 'r');
    let data = table((r, c) => r + c / 10);
    let prev = await m.commit(input(0, data));
    assert.equal(prev.formatVersion, 1);
    const full = prev.blobs.find((b) => b.name === 'emb')!;
    const manifests: Manifest[] = [prev];
    for (let k = 1; k <= MAX_PATCHES + 1; k++) {
      const next = data.slice();
      const f = new Float32Array(next.buffer);
      for (const r of [k % ROWS, (k * 7) % ROWS]) f[r * WIDTH] += k;
      const rows = rowsThatDiffer(data, next, ROWS)!;
      assert.equal(rows.length, 2);
      const from = prev.blobs.find((b) => b.name === 'emb')!.sha256;
      prev = await m.commit(input(k, next, { from, rows }), { previous: prev });
      data = next;
      manifests.push(prev);
      const emb = prev.blobs.find((b) => b.name === 'emb')!;
      if (k <= MAX_PATCHES) {
        assert.equal(prev.formatVersion, 2);
        assert.equal(emb.rows?.base.sha256, full.sha256, 'every patch builds on the first full base');
        assert.equal(emb.rows?.patches.length, k);
      } else {
        assert.equal(emb.rows, undefined, `after ${MAX_PATCHES} patches the next one is stored whole`);
        assert.equal(prev.formatVersion, 1);
      }
      const loaded = await m.load(prev.id);
      assert.deepEqual(loaded.blobs.get('emb'), data, `checkpoint ${k} reads back bitwise`);
    }
    // What each checkpoint newly stored: a patch (2 rows), the bias and nothing more; the base once.
    const list = await m.list();
    const patchBytes = 16 + 2 * (4 + WIDTH * 4);
    for (const c of list.filter((x) => x.step >= 1 && x.step <= MAX_PATCHES))
      assert.equal(c.newBytes, patchBytes + WIDTH * 4, `step ${c.step}`);
    assert.equal(list.find((c) => c.step === 0)!.newBytes, ROWS * WIDTH * 4 + WIDTH * 4);
    assert.equal(list.find((c) => c.step === 5)!.sizeBytes, ROWS * WIDTH * 4 + WIDTH * 4, 'sizes stay logical');

    // A blob unchanged since the previous checkpoint keeps its entry, chain and all.
    const same = await m.commit(input(100, data, { from: prev.blobs[0].sha256, rows: new Uint32Array(0) }), {
      previous: prev,
    });
    assert.deepEqual(
      same.blobs.find((b) => b.name === 'emb'),
      prev.blobs.find((b) => b.name === 'emb'),
    );
  });

  it('verifies each piece and the result; retention keeps a base while a chain needs it', async () => {
    const store = new FsCheckpointStore(path.join(dir, 'verify'));
    const m = new CheckpointManager(store, 'r', { blobGcGraceMs: 0 });
    const a = table((r, c) => r * c);
    const base = await m.commit(input(0, a));
    const b = a.slice();
    new Float32Array(b.buffer)[5 * WIDTH + 1] = 42;
    const from = base.blobs.find((x) => x.name === 'emb')!.sha256;
    const top = await m.commit(input(1, b, { from, rows: Uint32Array.of(5) }), { previous: base });
    const chain = top.blobs.find((x) => x.name === 'emb')!.rows!;

    // Only the newest is kept by policy: the base's own manifest goes, its blob stays (the chain names it).
    const kept = await m.applyRetention({ keepLatest: 1 });
    assert.deepEqual(kept.deleted, [base.id]);
    assert.deepEqual((await m.verify(top.id)).problems, []);
    assert.deepEqual((await m.load(top.id)).blobs.get('emb'), b);
    assert.ok(await store.exists(m.blobKey(chain.base.sha256)));

    // A damaged patch and a missing base are named as such.
    const patchKey = m.blobKey(chain.patches[0].sha256);
    const good = await store.read(patchKey);
    const flipped = good.slice();
    flipped[flipped.byteLength - 1] ^= 1;
    fs.writeFileSync(path.join(dir, 'verify', patchKey), flipped);
    assert.match((await m.verify(top.id)).problems[0].reason, /^row patch 1: sha256 mismatch/);
    await assert.rejects(m.load(top.id), /row patch 1: sha256 mismatch/);
    fs.writeFileSync(path.join(dir, 'verify', patchKey), good);
    fs.rmSync(path.join(dir, 'verify', m.blobKey(chain.base.sha256)));
    assert.match((await m.verify(top.id)).problems[0].reason, /^row chain base: missing/);
  });

  it('reads formatVersion 2 only with rows, and refuses rows in a version-1 manifest', async () => {
    const store = new FsCheckpointStore(path.join(dir, 'format'));
    const m = new CheckpointManager(store, 'r');
    const a = table(() => 1);
    const base = await m.commit(input(0, a));
    const b = a.slice();
    new Float32Array(b.buffer)[0] = 2;
    const top = await m.commit(input(1, b, { from: base.blobs[0].sha256, rows: Uint32Array.of(0) }), {
      previous: base,
    });
    const bytes = encodeManifest(top);
    assert.equal(decodeManifest(bytes, top.id).blobs[0].rows?.patches.length, 1);
    const v1 = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    v1.formatVersion = 1;
    assert.throws(
      () => decodeManifest(new TextEncoder().encode(JSON.stringify(v1)), top.id),
      /rows needs formatVersion 2/,
    );
    v1.formatVersion = 3;
    assert.throws(
      () => decodeManifest(new TextEncoder().encode(JSON.stringify(v1)), top.id),
      /unsupported formatVersion 3 \(this build reads 1 and 2\)/,
    );
    // A caller's claim of what changed is checked for shape: rows past the table or out of order are refused.
    await assert.rejects(
      m.commit(input(2, b, { from: top.blobs[0].sha256, rows: Uint32Array.of(3, 2) }), { previous: top }),
      /changes\.rows must be ascending row indices below 64/,
    );
  });

  describe('real training through the chunk commits (wasm)', () => {
    let data: string;
    before(async () => {
      await initBackend();
      data = path.join(dir, 'ids.csv');
      // 4,096 examples whose ids are hashed over a 50,000-row table: a batch of 32 touches 32 scattered rows.
      const lines = ['id,label'];
      for (let i = 0; i < 4096; i++) {
        const id = Math.imul(i + 1, 2654435761) >>> 0;
        lines.push(`${id % 50_000},${id % 2}`);
      }
      fs.writeFileSync(data, lines.join('\n') + '\n');
    });

    /** What both runs share: the hashed ids, one epoch, batches of 32, the seed. */
    const onIds = () => ({
      dataset: { format: 'csv', path: `file://${data}`, label: 'label', standardize: false, testFraction: 0.1 },
      epochs: 1,
      batchSize: 32,
      seed: 3,
      checkpoint: { storage: 'file://unused' },
    });

    /** Trains `chunks` chunks of `commitsPerChunk` commits `every` steps apart; each chunk continues the warm trainer
     *  with the previous chunk's last snapshot, as trainChunk does. */
    async function commitsOf(runId: string, raw: Record<string, unknown>, chunks: number, every: number) {
      const spec = validateSpec(raw);
      const manager = new CheckpointManager(new FsCheckpointStore(path.join(dir, 'train')), runId);
      const trainer = await Trainer.create(spec);
      const backend = await initBackend();
      let commits = null as ChunkCommits | null;
      const metrics = new TrainingMetrics({ defaultMetrics: false });
      try {
        for (let c = 0; c < chunks; c++) {
          commits = new ChunkCommits({
            runId,
            manager,
            trainer,
            backend,
            specHash: 'h',
            parent: commits?.lastCommitted ?? null,
            spare: commits?.spareForNext,
            everySeconds: 0,
            metrics,
          });
          for (let k = 0; k < 3; k++) {
            await trainer.train({ maxSteps: every });
            await commits.commit(k === 2 ? 'chunk-end' : 'time');
          }
        }
        const last = (await manager.list()).at(-1)!;
        const loaded = await manager.load(last.id);
        for (const t of trainer.snapshot().tensors)
          assert.deepEqual(loaded.blobs.get(t.name), t.data, `${t.name} reads back as trained`);
        const list = await manager.list();
        // The metric of what storage grows by agrees with the listing, checkpoint by checkpoint summed.
        assert.equal(
          parseScrape(await metrics.registry.metrics()).value('durable_train_checkpoint_new_bytes_total'),
          list.reduce((n, c) => n + c.newBytes!, 0),
        );
        return { list, last: await manager.readManifest(last.id), spec, manager, backend };
      } finally {
        trainer.dispose();
      }
    }

    it('an embedding table trained with SGD on scattered ids stores a few percent of a checkpoint per commit', async () => {
      const { list, last, spec, manager, backend } = await commitsOf(
        'embedding',
        {
          model: {
            layers: [
              { type: 'embedding', inputDim: 50_000, outputDim: 32 },
              { type: 'flatten' },
              { type: 'dense', units: 2, activation: 'softmax' },
            ],
          },
          ...onIds(),
          optimizer: { name: 'sgd', learningRate: 0.1 },
        },
        2,
        10,
      );
      assert.equal(list.length, 6);
      const table = last.blobs.find((b) => b.shape[0] === 50_000)!;
      assert.equal(
        table.rows?.patches.length,
        5,
        'the five commits after the first, over two chunks, each added a patch',
      );
      // 10 steps of 32 examples touch at most 320 of 50,000 rows (0.64%): each later commit newly stores its patch,
      // the small dense layer, the iteration counter: under 15% of the whole checkpoint (here about 2%).
      for (const c of list.slice(1)) {
        const share = c.newBytes! / c.sizeBytes;
        assert.ok(share < 0.15, `step ${c.step}: ${c.newBytes} of ${c.sizeBytes} bytes newly stored`);
        assert.ok(c.newBytes! <= 320 * (4 + 32 * 4) + 16 + 4096 * 4, `step ${c.step}: ${c.newBytes} bytes`);
      }
      assert.equal(list[0].newBytes, list[0].sizeBytes, 'the first commit stores everything');

      // A cold restore (another training process, a standby worker): the loaded checkpoint's buffers are the first
      // commit's spare, so it stores a patch on the chain too, and what it stores reads back as trained.
      const loaded = await manager.load(last.id);
      const trainer = await Trainer.fromSnapshot(spec, snapshotOf(loaded.manifest, loaded.blobs));
      try {
        const commits = new ChunkCommits({
          runId: 'embedding',
          manager,
          trainer,
          backend,
          specHash: 'h',
          parent: { runId: 'embedding', id: last.id },
          spare: spareOfLoaded(loaded.manifest, loaded.blobs),
          everySeconds: 0,
          metrics: new TrainingMetrics({ defaultMetrics: false }),
        });
        await trainer.train({ maxSteps: 10 });
        const m = await commits.commit('chunk-end');
        assert.equal(m.blobs.find((b) => b.shape[0] === 50_000)!.rows?.patches.length, 6);
        const after = (await manager.list()).find((c) => c.id === m.id)!;
        assert.ok(after.newBytes! / after.sizeBytes < 0.15, `${after.newBytes} of ${after.sizeBytes}`);
        const back = await manager.load(m.id);
        for (const t of trainer.snapshot().tensors) assert.deepEqual(back.blobs.get(t.name), t.data, t.name);
      } finally {
        trainer.dispose();
      }
    });

    it('a loaded checkpoint made a spare gives every blob a buffer of its own (a load shares equal contents)', () => {
      const shared = new Uint8Array(8);
      const blob = (name: string) => ({ name, dtype: 'float32', shape: [2], sha256: 'a'.repeat(64), size: 8 });
      const manifest = {
        ...input(
          0,
          table(() => 0),
        ),
        formatVersion: 1,
        id: 'x',
        runId: 'r',
        blobs: [blob('a'), blob('b')],
      };
      const spare = spareOfLoaded(
        manifest as Manifest,
        new Map([
          ['a', shared],
          ['b', shared],
        ]),
      );
      assert.equal(spare.input.blobs[0].data, shared);
      assert.notEqual(spare.input.blobs[1].data, shared);
      assert.deepEqual(spare.input.blobs[1].data, shared);
    });

    it('a fine-tune with all but the last layer frozen writes only that layer and its slots', async () => {
      const { list } = await commitsOf(
        'frozen',
        {
          model: {
            layers: [
              { type: 'embedding', inputDim: 50_000, outputDim: 8, name: 'table' },
              { type: 'flatten' },
              { type: 'dense', units: 16, activation: 'relu', name: 'hidden' },
              { type: 'dense', units: 2, activation: 'softmax', name: 'head' },
            ],
          },
          freeze: ['table', 'hidden'],
          ...onIds(),
          optimizer: { name: 'adam', learningRate: 0.01 },
        },
        1,
        10,
      );
      // The head: a 16x2 kernel and 2 biases, with Adam's two slots each; the iteration counter.
      const trainable = (16 * 2 + 2) * 4 * 3 + 4;
      for (const c of list.slice(1)) assert.ok(c.newBytes! <= trainable, `step ${c.step}: ${c.newBytes} bytes`);
    });
  });
});
