// The two-phase commit of a chunk (activities/chunk/commits.ts), in process: a real trainer and a real filesystem
// store whose manifest writes the test holds back or fails. Training waits only for the snapshot; a checkpoint counts
// (lastCommitted, metrics) only once its manifest is durable; a commit due while a persist is in flight waits for it;
// a failed background persist fails the next commit with the synchronous path's error; the snapshot is not touched by
// the steps trained while it persists; each manifest's parent is the previous durable one.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { ChunkCommits } from '../../activities/chunk/commits';
import { FailureTypes } from '../../activities/types';
import { TrainingMetrics } from '../../activities/metrics';
import {
  CheckpointManager,
  FsCheckpointStore,
  StorageUnavailableError,
  type CheckpointStore,
  type WriteAtomicOptions,
} from '../../checkpoint';
import { validateSpec, type RunSpec } from '../../spec';
import { Trainer, type TrainerSnapshot } from '../../training';
import { NUMERICS_ENV_VAR } from '../../training/numerics';
import { initBackend, type BackendInfo } from '../../training/backend';
import { parseScrape } from '../helpers/prom-scrape';

/** A filesystem store whose manifest writes wait for `release()` while held, or fail while `failing`. */
class GatedStore extends FsCheckpointStore {
  private gate: { opened: Promise<void>; open: () => void } | null = null;
  failing = false;
  /** Resolves when a manifest write reaches the store (and is held or failed there). */
  entered: Promise<void> = Promise.resolve();
  private enteredNow: () => void = () => undefined;

  hold(): void {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    this.gate = { opened, open };
    this.entered = new Promise<void>((r) => (this.enteredNow = r));
  }
  release(): void {
    this.gate?.open();
    this.gate = null;
  }

  override async writeAtomic(key: string, data: Uint8Array, opts?: WriteAtomicOptions): Promise<void> {
    if (key.includes('/manifests/')) {
      this.enteredNow();
      await this.gate?.opened;
      if (this.failing)
        throw new StorageUnavailableError('disk gone', { op: 'write', key, attempts: 1, retryable: true, code: 'EIO' });
    }
    return super.writeAtomic(key, data, opts);
  }
}

/** Lets the event loop run a while (macrotasks): a promise still pending after it is waiting on something. */
const turns = async (n = 20) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('two-phase checkpoint commit', function () {
  this.timeout(60_000);
  let dir: string;
  let spec: RunSpec;
  let backend: BackendInfo;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-async-commit-'));
    const rows = ['a,b,y'];
    for (let i = 0; i < 64; i++) rows.push(`${i % 7},${(i * 13) % 11},${(i * 37) % 100}`);
    fs.writeFileSync(path.join(dir, 'r.csv'), rows.join('\n') + '\n');
    spec = regression([8], 0.01);
    backend = await initBackend();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A regression MLP (hidden relu layers of these widths) on the test's CSV, with Adam at `learningRate`. */
  function regression(hidden: number[], learningRate: number): RunSpec {
    return validateSpec({
      model: {
        layers: [...hidden.map((units) => ({ type: 'dense', units, activation: 'relu' })), { type: 'dense', units: 1 }],
      },
      dataset: { format: 'csv', path: `file://${dir}/r.csv`, label: 'y', testFraction: 0.25 },
      task: 'regression',
      epochs: 20,
      batchSize: 8,
      seed: 5,
      optimizer: { name: 'adam', learningRate },
      checkpoint: { storage: `file://${dir}/ck` },
    });
  }

  /** A trainer of `o.spec` (default: the test's) committing through a ChunkCommits into `o.root` (default: ck/). */
  async function setup(runId: string, o: { spec?: RunSpec; root?: string; thread?: boolean } = {}) {
    const root = path.join(dir, o.root ?? 'ck');
    const store = new GatedStore(root);
    const manager = new CheckpointManager(store as CheckpointStore, runId, {
      ...(o.thread ? { thread: { storage: `file://${root}` } } : {}),
    });
    const trainer = await Trainer.create(o.spec ?? spec);
    const metrics = new TrainingMetrics({ defaultMetrics: false });
    const errors: string[] = [];
    const commits = new ChunkCommits({
      runId,
      manager,
      trainer,
      backend,
      specHash: 'h',
      parent: null,
      everySeconds: 0,
      metrics,
      logError: (msg, meta) => errors.push(`${msg}: ${String(meta.error)}`),
    });
    const manifests = async () => (await store.list(`${runId}/manifests/`)).length;
    // Read through a function: the assertions narrow a property read, not a call.
    const committed = () => commits.lastCommitted;
    return { store, manager, trainer, metrics, commits, errors, manifests, committed };
  }

  it('counts a checkpoint only once its manifest is durable, and its snapshot ignores the steps trained meanwhile', async () => {
    const { store, manager, trainer, metrics, commits, manifests, committed } = await setup('order');
    try {
      await trainer.train({ maxSteps: 3 });
      const atCommit = trainer.snapshot();
      store.hold();
      await commits.start('time'); // training may go on: the manifest is held back
      await store.entered;
      assert.equal(commits.persisting, 3);
      assert.equal(committed(), null);
      assert.equal(commits.count, 0);
      assert.equal(await manifests(), 0);
      assert.equal(
        parseScrape(await metrics.registry.metrics()).find('durable_train_checkpoint_commits_total').length,
        0,
      );

      await trainer.train({ maxSteps: 4 }); // the next steps train while step 3 persists
      assert.equal(trainer.state.step, 7);
      store.release();
      await commits.settle();
      assert.equal(committed()?.step, 3);
      assert.equal(commits.count, 1);
      assert.equal(await manifests(), 1);

      // What was stored is the state at step 3, byte for byte, not what the trainer holds now.
      const loaded = await manager.load(committed()!.id);
      for (const t of atCommit.tensors) assert.deepEqual(loaded.blobs.get(t.name), t.data, t.name);
      assert.equal(loaded.manifest.step, 3);
      assert.notDeepEqual(trainer.snapshot().tensors[0].data, atCommit.tensors[0].data);

      const s = parseScrape(await metrics.registry.metrics());
      assert.equal(s.value('durable_train_checkpoint_stall_seconds_count'), 1);
      assert.equal(s.value('durable_train_checkpoint_persist_seconds_count'), 1);
    } finally {
      trainer.dispose();
    }
  });

  it('makes a commit due while a persist is in flight wait for it; each parent is the previous durable checkpoint', async () => {
    const { store, manager, trainer, commits, committed } = await setup('backpressure');
    try {
      await trainer.train({ maxSteps: 2 });
      store.hold();
      await commits.start('time');
      await store.entered;
      await trainer.train({ maxSteps: 2 });
      let second = false;
      const next = commits.start('time').then(() => (second = true));
      await turns();
      assert.equal(second, false, 'the second commit waits for the first persist');
      assert.equal(commits.persisting, 2);
      store.release();
      await next;
      assert.equal(committed()?.step, 2);
      assert.equal(commits.persisting, 4);
      const final = await commits.commit('chunk-end');
      assert.equal(final.step, 4);
      assert.equal(commits.count, 2);
      const step2 = (await manager.list()).find((c) => c.step === 2);
      assert.ok(step2);
      assert.equal((await manager.readManifest(final.id)).parent?.id, step2.id);
      // The step-4 snapshot was copied into the step-2 snapshot's buffers once that persist ended: both checkpoints
      // still verify, and step 4 holds exactly the trainer's state.
      assert.deepEqual((await manager.verify(step2.id)).problems, []);
      const loaded = await manager.load(final.id);
      for (const t of trainer.snapshot().tensors) assert.deepEqual(loaded.blobs.get(t.name), t.data, t.name);
      // Committing the same step again is the same checkpoint.
      assert.equal((await commits.commit('chunk-end')).id, final.id);
      assert.equal(commits.count, 2);
    } finally {
      trainer.dispose();
    }
  });

  it('surfaces a failed background persist at the next commit as the storage failure a synchronous commit gives', async () => {
    const { store, trainer, metrics, commits, errors, manifests, committed } = await setup('failing');
    try {
      await trainer.train({ maxSteps: 2 });
      await commits.commit('time');
      await trainer.train({ maxSteps: 2 });
      store.hold();
      store.failing = true;
      await commits.start('time'); // the snapshot succeeds; the persist fails later
      await store.entered;
      store.release();
      await trainer.train({ maxSteps: 1 });
      await assert.rejects(commits.commit('chunk-end'), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure, String(err));
        assert.equal(err.type, FailureTypes.StorageUnavailable);
        assert.match(err.message, /checkpoint commit of run failing failed: storage unavailable: disk gone/);
        return true;
      });
      assert.equal(committed()?.step, 2, 'the newest durable checkpoint stays the one before');
      assert.equal(await manifests(), 1);
      assert.equal(errors.length, 1);
      const s = parseScrape(await metrics.registry.metrics());
      assert.equal(s.value('durable_train_checkpoint_failures_total', { reason: 'EIO' }), 1);
      // Reported once: the storage is back, the next commit goes through.
      store.failing = false;
      assert.equal((await commits.commit('chunk-end')).step, 5);
    } finally {
      trainer.dispose();
    }
  });
  it('through the persist thread stores what the training thread stores, commit after commit, buffers reused', async () => {
    // A 128x128 kernel and its Adam slots are 64 KiB each: moved to the thread and back, not copied.
    const wide = regression([128, 128], 0.001);
    const blobsOf = async (runId: string, thread: boolean) => {
      const { manager, trainer, commits } = await setup(runId, {
        spec: wide,
        root: thread ? 'thread' : 'here',
        thread,
      });
      try {
        for (let k = 0; k < 6; k++) {
          await trainer.train({ maxSteps: 2 });
          await commits.start('time'); // into the previous snapshot's buffers, back from the thread
        }
        await commits.commit('chunk-end');
        const list = await manager.list();
        const out = [];
        for (const c of list) {
          const m = await manager.readManifest(c.id);
          out.push({ step: m.step, blobs: m.blobs.map((b) => [b.name, b.sha256, b.rows?.patches.length ?? 0]) });
        }
        return { out, weights: trainer.weightsSha256() };
      } finally {
        trainer.dispose();
      }
    };
    const here = await blobsOf('same', false);
    const there = await blobsOf('same', true);
    assert.equal(here.out.length, 6); // the last time-based commit is the chunk-end one's step
    assert.deepEqual(there, here);
    // The persist thread yields the CPU to training (nice 19); every other thread of the process, libuv's pool
    // included, keeps the process's priority.
    const nices = fs.readdirSync('/proc/self/task').map((tid) => {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]); // field 19, after pid and (comm)
    });
    const own = os.getPriority();
    assert.equal(nices.filter((n) => n === 19).length, 1, `one thread at nice 19: ${nices.join(' ')}`);
    assert.equal(nices.filter((n) => n === own).length, nices.length - 1, `the others at ${own}: ${nices.join(' ')}`);
  });

  it('lends Adam host arrays to the persist thread: each checkpoint is its step state, training is unchanged', async () => {
    // Numerics 2 (Adam on the host, the tensorflow backend's default) on this backend, for its lendable arrays.
    const before = process.env[NUMERICS_ENV_VAR];
    process.env[NUMERICS_ENV_VAR] = '2';
    const wide = regression([128, 128], 0.001);
    try {
      const { manager, trainer, commits } = await setup('lend', { spec: wide, root: 'lend', thread: true });
      const reference = await Trainer.create(wide);
      try {
        assert.ok(manager.readsSharedMemory, 'a persist thread on the filesystem reads shared memory');
        const lent: number[] = [];
        const own = trainer.snapshot.bind(trainer);
        trainer.snapshot = (o?: { reuse?: TrainerSnapshot; lend?: boolean }) => {
          const snap = own(o);
          lent.push(snap.tensors.filter((t) => t.data.buffer instanceof SharedArrayBuffer).length);
          return snap;
        };
        // The state at each committed step, from a trainer that never lends (snapshot() copies).
        const expected = new Map<number, Map<string, Buffer>>();
        for (let k = 0; k < 6; k++) {
          await trainer.train({ maxSteps: 2 }); // while the previous persist reads the arrays lent to it
          await reference.train({ maxSteps: 2 });
          const ref = reference.snapshot();
          expected.set(ref.state.step, new Map(ref.tensors.map((t) => [t.name, Buffer.from(t.data)])));
          await commits.start('time');
        }
        await commits.commit('chunk-end');
        // 3 dense layers: kernel and bias, each with m and v: 18 lent every time (the first too: nothing to give back).
        assert.deepEqual(lent, [18, 18, 18, 18, 18, 18]);
        const list = await manager.list();
        assert.equal(list.length, 6);
        for (const c of list) {
          const { manifest, blobs } = await manager.load(c.id);
          const want = expected.get(manifest.step)!;
          assert.ok(want, `step ${manifest.step} was committed`);
          assert.deepEqual([...blobs.keys()].sort(), [...want.keys()].sort());
          for (const [name, data] of blobs) assert.ok(want.get(name)!.equals(data), `step ${manifest.step}: ${name}`);
          const patched = manifest.blobs.filter((b) => b.rows).length;
          assert.equal(patched, 0, 'every row of an Adam-trained weight changes: stored whole');
        }
        assert.equal(trainer.weightsSha256(), reference.weightsSha256(), 'lending changes no update');
      } finally {
        trainer.dispose();
        reference.dispose();
      }
    } finally {
      if (before === undefined) delete process.env[NUMERICS_ENV_VAR];
      else process.env[NUMERICS_ENV_VAR] = before;
    }
  });
});
