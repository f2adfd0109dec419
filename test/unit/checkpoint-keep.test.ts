// What is kept, by the CLI on a real fs store (in process, `--storage`, no Temporal): `checkpoints pin/unpin` beat
// every retention rule, `checkpoints gc` lists unreferenced blobs (dry run) and deletes them with `--apply` while
// sparing young ones, and retention's `auto` check re-hashes small checkpoints and checks large ones by size.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AUTO_FULL_VERIFY_MAX_BYTES,
  type RetentionPolicy,
  CheckpointManager,
  FsCheckpointStore,
  type CheckpointStore,
  type CommitInput,
} from '../../checkpoint';
import { EXIT } from '../../cli/common';
import { runCli } from '../../cli/program';

const RUN = 'keep-run';
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'dt-keep-'));

function input(step: number, bytes = 64): CommitInput {
  const data = new Uint8Array(bytes).fill(step % 251);
  return {
    step,
    epoch: 0,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
    parent: null,
    blobs: [{ name: 'w', dtype: 'float32', shape: [bytes / 4], data }],
    state: { step },
    metrics: { loss: 1 / (step + 1) },
    fingerprints: { spec: 's', dataset: 'd', model: 'm' },
    backend: { name: 'cpu', version: '4.22.0' },
    reason: 'chunk-end',
  };
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = { out: '', err: '' };
  const code = await runCli(argv, { out: (s) => (r.out += s), err: (s) => (r.err += s) });
  return { code, ...r };
}

const ids = async (m: CheckpointManager) => (await m.list()).map((c) => c.id);

describe('what is kept: pins, blob gc and the retention check (fs store, CLI in process)', function () {
  let root: string;
  let manager: CheckpointManager;
  let storage: string;
  beforeEach(function () {
    root = tmp();
    storage = `file://${root}`;
    manager = new CheckpointManager(new FsCheckpointStore(root), RUN);
  });
  afterEach(function () {
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('a pinned checkpoint survives keepLatest, keepBest and keepEverySteps until unpinned; an unknown one exits 3', async function () {
    const made: string[] = [];
    for (const step of [10, 20, 30, 40]) made.push((await manager.commit(input(step))).id);
    const pin = await cli(['checkpoints', 'pin', RUN, made[0], '--storage', storage, '--json']);
    assert.equal(pin.code, EXIT.ok, pin.err);
    assert.deepEqual(JSON.parse(pin.out), { runId: RUN, id: made[0], pinned: true });
    assert.equal((await manager.list()).find((c) => c.id === made[0])?.pinned, true);

    for (const policy of <RetentionPolicy[]>[
      { keepLatest: 1 },
      { keepBest: { k: 1, metric: 'loss', mode: 'min' as const } },
      { keepEverySteps: 40 },
    ]) {
      await manager.applyRetention(policy);
      assert.ok((await ids(manager)).includes(made[0]), `pinned kept under ${JSON.stringify(policy)}`);
    }
    assert.deepEqual(await ids(manager), [made[0], made[3]]);
    // Its blobs stay with it: it still verifies and loads.
    assert.equal((await manager.verify(made[0])).ok, true);

    const unpin = await cli(['checkpoints', 'unpin', RUN, made[0], '--storage', storage]);
    assert.equal(unpin.code, EXIT.ok, unpin.err);
    assert.match(unpin.out, /unpinned/);
    await manager.applyRetention({ keepLatest: 1 });
    assert.deepEqual(await ids(manager), [made[3]]);

    const unknown = await cli(['checkpoints', 'pin', RUN, 'step-000000099-0000abcd', '--storage', storage]);
    assert.equal(unknown.code, EXIT.notFound, unknown.err);
    assert.match(unknown.err, /cannot pin step-000000099-0000abcd: no such checkpoint in run keep-run/);
  });

  it('gc lists unreferenced blobs older than the grace period (dry run), deletes them with --apply, spares young ones and referenced ones', async function () {
    const kept = await manager.commit(input(1));
    const blobs = path.join(root, RUN, 'blobs');
    const old = path.join(blobs, 'a'.repeat(64));
    const young = path.join(blobs, 'b'.repeat(64));
    fs.writeFileSync(old, new Uint8Array(1000));
    fs.writeFileSync(young, new Uint8Array(10));
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    fs.utimesSync(old, twoHoursAgo, twoHoursAgo);
    // The referenced blob is old too: age alone never makes a blob garbage.
    fs.utimesSync(path.join(blobs, kept.blobs[0].sha256), twoHoursAgo, twoHoursAgo);

    const dry = await cli(['checkpoints', 'gc', RUN, '--storage', storage, '--json']);
    assert.equal(dry.code, EXIT.ok, dry.err);
    const report = JSON.parse(dry.out);
    assert.equal(report.dryRun, true);
    assert.deepEqual(report.blobs, [{ key: `${RUN}/blobs/${'a'.repeat(64)}`, size: 1000 }]);
    assert.equal(report.bytes, 1000);
    assert.equal(report.deleted, 0);
    assert.equal(report.young, 1);
    assert.ok(fs.existsSync(old), 'a dry run deletes nothing');
    const human = await cli(['checkpoints', 'gc', RUN, '--storage', storage]);
    assert.match(human.out, /1 unreferenced blob\(s\), 0\.00 MB \(dry run: pass --apply to delete them\); 1 younger/);

    const applied = await cli(['checkpoints', 'gc', RUN, '--storage', storage, '--apply']);
    assert.equal(applied.code, EXIT.ok, applied.err);
    assert.match(applied.out, /^deleted 1 unreferenced blob/);
    assert.equal(fs.existsSync(old), false);
    assert.ok(fs.existsSync(young), 'a young blob may belong to a commit in progress');
    assert.equal((await manager.verify(kept.id)).ok, true, 'the checkpoint still verifies');

    const again = await cli(['checkpoints', 'gc', RUN, '--storage', storage]);
    assert.match(again.out, /^no unreferenced blobs; 1 younger/);
  });

  it('gc collects nothing while a manifest is unreadable (its blobs are unknown), and says so with exit 1', async function () {
    await manager.commit(input(1));
    const orphan = path.join(root, RUN, 'blobs', 'c'.repeat(64));
    fs.writeFileSync(orphan, new Uint8Array(8));
    const t = new Date(Date.now() - 2 * 3600_000);
    fs.utimesSync(orphan, t, t);
    fs.writeFileSync(path.join(root, RUN, 'manifests', 'step-000000002-0000abcd.json'), '{ not json');
    const r = await cli(['checkpoints', 'gc', RUN, '--storage', storage, '--apply']);
    assert.equal(r.code, EXIT.check, r.out + r.err);
    assert.match(r.out, /nothing collected: unreadable manifest/);
    assert.ok(fs.existsSync(orphan));
  });

  it('checkpoints list --json gives each checkpoint its logical size and the bytes it newly stored (a frozen tensor once)', async function () {
    const frozen = new Uint8Array(4000).fill(7);
    for (const step of [1, 2, 3]) {
      const i = input(step, 400);
      i.blobs.push({ name: 'frozen', dtype: 'float32', shape: [1000], data: frozen });
      if (step === 3) i.blobs[0].data = new Uint8Array(400).fill(2); // the same bytes as step 2's: nothing new
      await manager.commit(i);
    }
    const r = await cli(['checkpoints', 'list', RUN, '--storage', storage, '--json']);
    assert.equal(r.code, EXIT.ok, r.err);
    const rows = JSON.parse(r.out) as Array<{ step: number; sizeBytes: number; newBytes: number }>;
    assert.deepEqual(
      rows.map((c) => [c.step, c.sizeBytes, c.newBytes]),
      [
        [1, 4400, 4400],
        [2, 4400, 400],
        [3, 4400, 0],
      ],
    );
    const text = await cli(['checkpoints', 'list', RUN, '--storage', storage]);
    assert.match(text.out.split('\n')[0], /size\s+new\s+metrics/);
    assert.match(text.out.split('\n')[2], /0\.00 MB\s+0\.00 MB/);
  });

  it("retention's auto check re-hashes checkpoints up to 16 MiB and checks larger ones by size; full and quick as asked", async function () {
    // A store that counts full reads of blobs (a re-hash reads the blob; a size check only lists).
    const counting = (inner: CheckpointStore) => {
      const reads = { n: 0 };
      const store: CheckpointStore = Object.create(inner);
      store.read = (key: string) => {
        if (key.includes('/blobs/')) reads.n++;
        return inner.read(key);
      };
      if (inner.readHashing)
        store.readHashing = (key: string) => {
          if (key.includes('/blobs/')) reads.n++;
          return inner.readHashing!(key);
        };
      return { store, reads };
    };
    const reHashes = async (bytes: number, mode?: 'auto' | 'full' | 'quick') => {
      const dir = tmp();
      try {
        const { store, reads } = counting(new FsCheckpointStore(dir));
        const m = new CheckpointManager(store, RUN, mode ? { retentionVerify: mode } : {});
        for (const step of [1, 2, 3]) await m.commit(input(step, bytes), { handOver: true });
        reads.n = 0;
        await m.applyRetention({ keepLatest: 2 });
        assert.equal((await m.list()).length, 2);
        return reads.n;
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    };
    assert.ok((await reHashes(1024)) > 0, 'small: re-hashed by default');
    assert.equal(await reHashes(AUTO_FULL_VERIFY_MAX_BYTES + 4), 0, 'over 16 MiB: checked by size by default');
    assert.ok((await reHashes(AUTO_FULL_VERIFY_MAX_BYTES + 4, 'full')) > 0, 'full: always re-hashed');
    assert.equal(await reHashes(1024, 'quick'), 0, 'quick: never re-hashed');
  });
});
