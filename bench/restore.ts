// Takeover restore: what a standby worker (backend up, dataset loaded) spends between being handed a run and its first
// new step, for the main job's mnist-cnn and for the built-in wide-mlp (97 MB of weights, 290 MB with Adam's slots).
// Each repetition reads and verifies the newest checkpoint from a local fs store (CheckpointManager.load, as a chunk's
// start does), rebuilds the trainer from it behind the resume guards (restoreTrainer), and times its first step.
//
//   npm run build && node dist/bench/restore.js [--reps 5] [--quick]
//
// The page cache is warm (the checkpoint was just written), as it is on a standby reading a shared disk it has read
// before; for cold reads see bench/checkpoint-io.ts, which evicts the files.
import { commitTrainer } from '../activities/commit';
import { restoreTrainer } from '../activities/chunk/restore';
import { specHash } from '../activities/fingerprint';
import { CheckpointManager, FsCheckpointStore } from '../checkpoint';
import { validateSpec, type RunSpec } from '../spec';
import { Trainer } from '../training';
import { initBackend, type BackendInfo } from '../training/backend';
import { WIDE_MLP } from '../training/wide-mlp';
import { QUICK, dirStats, emit, gc, log, machine, now, numArg, rmrf, round, summarize, table, tmpDir } from './common';

interface Case {
  name: string;
  spec: (storage: string) => RunSpec;
}

const base = (storage: string) => ({
  dataset: { name: 'mnist', trainLimit: 6400, testLimit: 64 },
  epochs: 1,
  batchSize: 64,
  seed: 42,
  checkpoint: { storage },
});

const CASES: Case[] = [
  {
    name: 'mnist-cnn',
    spec: (s) => validateSpec({ ...base(s), model: 'mnist-cnn', optimizer: { name: 'adam', learningRate: 0.001 } }),
  },
  {
    name: WIDE_MLP,
    spec: (s) =>
      validateSpec({ ...base(s), model: { registered: WIDE_MLP }, optimizer: { name: 'adam', learningRate: 0.0001 } }),
  },
];

interface Rep {
  loadMs: number;
  rebuildMs: number;
  firstStepMs: number;
  totalMs: number;
}

async function measure(c: Case, reps: number, backend: BackendInfo) {
  const dir = tmpDir(`dt-bench-restore-${c.name}-`);
  try {
    const spec = c.spec(`file://${dir}`);
    const manager = new CheckpointManager(new FsCheckpointStore(dir), `bench-${c.name}`);
    // The run before the takeover: a few steps and a commit. This also loads the dataset and warms the backend, as a
    // standby worker has done before it is handed the run.
    const first = await Trainer.create(spec);
    await first.train({ maxSteps: 3 });
    const m = await commitTrainer(manager, first, {
      backend,
      specHash: specHash(spec),
      parent: null,
      reason: 'chunk-end',
    });
    first.dispose();
    const bytes = dirStats(dir).bytes;
    const out: Rep[] = [];
    for (let r = 0; r < reps; r++) {
      gc();
      const t0 = now();
      const loaded = await manager.load(m.id);
      const t1 = now();
      const trainer = await restoreTrainer(spec, backend, loaded.manifest, loaded.blobs);
      const t2 = now();
      await trainer.train({ maxSteps: 1 });
      const t3 = now();
      trainer.dispose();
      out.push({ loadMs: t1 - t0, rebuildMs: t2 - t1, firstStepMs: t3 - t2, totalMs: t3 - t0 });
      log(
        `  ${c.name} rep ${r + 1}: load ${round(t1 - t0, 0)} ms, rebuild ${round(t2 - t1, 0)} ms, step ${round(t3 - t2, 0)} ms`,
      );
    }
    return {
      model: c.name,
      checkpointMB: round(bytes / 2 ** 20, 1),
      loadMs: summarize(
        out.map((o) => o.loadMs),
        1,
      ),
      rebuildMs: summarize(
        out.map((o) => o.rebuildMs),
        1,
      ),
      firstStepMs: summarize(
        out.map((o) => o.firstStepMs),
        1,
      ),
      totalMs: summarize(
        out.map((o) => o.totalMs),
        1,
      ),
    };
  } finally {
    rmrf(dir);
  }
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const reps = numArg('--reps', QUICK ? 2 : 5);
  log(`restore: a standby's takeover, ${reps} repetitions per model, backend ${backend.name}`);
  const results = [];
  for (const c of CASES) results.push(await measure(c, reps, backend));
  table(
    'takeover restore (warm page cache)',
    results.map((r) => ({
      model: r.model,
      checkpointMB: r.checkpointMB,
      loadP50ms: r.loadMs.median,
      rebuildP50ms: r.rebuildMs.median,
      firstStepP50ms: r.firstStepMs.median,
      totalP50ms: r.totalMs.median,
      totalMaxMs: r.totalMs.max,
    })),
  );
  emit({ bench: 'restore', machine: machine(backend.name), reps, results });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
