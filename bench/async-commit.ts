// The two-phase checkpoint commit on a large model: the built-in wide-mlp (24.2 M parameters, 97 MB of float32
// weights, 290 MB with Adam's slots) trained on MNIST through the chunk's commit path (activities/chunk/commits.ts,
// a local fs store), the same number of steps in each variant:
//   none   no intermediate checkpoint (only the chunk-end commit)
//   async  a checkpoint every --every seconds (default 2): snapshot between steps, persist in the background
//   sync   the same interval, each commit awaited whole before the next step (the path before the two-phase commit)
// Samples/s counts the whole run (training plus the chunk-end commit). Each commit's training stall (its snapshot,
// plus any wait for the previous persist) and its background persist time are read from the commit metrics;
// stallShare (training time lost to commits over wall time) is the ratio by decomposition, robust to machine noise.
//
//   npm run build && node dist/bench/async-commit.js [--quick] [--steps N] [--every 2] [--no-sync]
//
// Goals: async/none samples/s >= 0.95; stall per commit <= 120 ms on the 100 MB model.
import { ChunkCommits } from '../activities/chunk/commits';
import { commitTrainer } from '../activities/commit';
import { specHash } from '../activities/fingerprint';
import { TrainingMetrics } from '../activities/metrics';
import { CheckpointManager, FsCheckpointStore } from '../checkpoint';
import { validateSpec, type RunSpec } from '../spec';
import { Trainer } from '../training';
import { initBackend, type BackendInfo } from '../training/backend';
import { WIDE_MLP } from '../training/wide-mlp';
import { QUICK, emit, log, machine, now, numArg, rmrf, round, summarize, table, tmpDir } from './common';

type Variant = 'none' | 'async' | 'sync';

/** Commit metrics as they are recorded: each commit's stall and persist seconds. */
class RecordingMetrics extends TrainingMetrics {
  readonly stalls: number[] = [];
  readonly persists: number[] = [];
  /** The stall without the wait for the previous persist: the snapshot alone. */
  readonly snapshots: number[] = [];
  override committed(...args: Parameters<TrainingMetrics['committed']>): void {
    const [, , , , reason, times] = args;
    if (times && reason === 'time') {
      this.stalls.push(times.stallSeconds * 1000);
      this.snapshots.push((times.stallSeconds - (times.waitSeconds ?? 0)) * 1000);
      this.persists.push(times.persistSeconds * 1000);
    }
    super.committed(...args);
  }
}

function wideSpec(storage: string, trainLimit: number): RunSpec {
  return validateSpec({
    model: { registered: WIDE_MLP },
    dataset: { name: 'mnist', trainLimit, testLimit: 64 },
    epochs: 1,
    batchSize: 64,
    seed: 42,
    optimizer: { name: 'adam', learningRate: 0.0001 },
    checkpoint: { storage },
  });
}

interface RunRecord {
  variant: Variant;
  steps: number;
  wallMs: number;
  samplesPerSec: number;
  commits: number;
  /** Training time lost to commits (their stalls, and waiting for the chunk-end one) over the run's wall time. */
  stallShare: number;
  stallMs?: ReturnType<typeof summarize>;
  snapshotMs?: ReturnType<typeof summarize>;
  persistMs?: ReturnType<typeof summarize>;
  weightsSha256: string;
}

async function run(variant: Variant, steps: number, everyS: number, backend: BackendInfo): Promise<RunRecord> {
  const dir = tmpDir(`dt-bench-async-${variant}-`);
  try {
    const spec = wideSpec(`file://${dir}`, steps * 64);
    const manager = new CheckpointManager(new FsCheckpointStore(dir), `bench-${variant}`);
    const trainer = await Trainer.create(spec);
    await trainer.train({ maxSteps: 1 }); // warm-up (kernels, first allocations): not timed
    const metrics = new RecordingMetrics({ defaultMetrics: false });
    const hash = specHash(spec);
    const commits = new ChunkCommits({
      runId: `bench-${variant}`,
      manager,
      trainer,
      backend,
      specHash: hash,
      parent: null,
      everySeconds: variant === 'async' ? everyS : 0,
      metrics,
      logError: (msg, meta) => log(`${msg}: ${String(meta.error)}`),
    });
    let syncCommits = 0;
    const syncStalls: number[] = [];
    let lastSync = now();
    let parent: { runId: string; id: string } | null = null;
    const t0 = now();
    const r = await trainer.train({
      maxSteps: steps - 1,
      onStep: async (p) => {
        if (variant === 'async' && commits.due(p.step, p.totalSteps)) await commits.start('time');
        if (variant === 'sync' && now() - lastSync >= everyS * 1000 && p.step < p.totalSteps) {
          const s0 = now();
          const m = await commitTrainer(manager, trainer, { backend, specHash: hash, parent, reason: 'time' });
          parent = { runId: m.runId, id: m.id };
          syncStalls.push(now() - s0);
          syncCommits++;
          lastSync = now();
        }
      },
    });
    const end0 = now();
    if (variant === 'sync') {
      await commitTrainer(manager, trainer, { backend, specHash: hash, parent, reason: 'chunk-end' });
    } else {
      await commits.commit('chunk-end');
    }
    const wallMs = now() - t0;
    const lostMs = variant === 'sync' ? syncStalls.reduce((a, b) => a + b, 0) + (now() - end0) : commits.ms;
    const weightsSha256 = trainer.weightsSha256();
    trainer.dispose();
    const stalls = variant === 'sync' ? syncStalls : metrics.stalls;
    return {
      variant,
      steps: r.stepsRun,
      wallMs: round(wallMs, 0),
      samplesPerSec: round((r.stepsRun * 64) / (wallMs / 1000), 1),
      commits: variant === 'sync' ? syncCommits : metrics.stalls.length,
      stallShare: round(lostMs / wallMs, 4),
      ...(stalls.length ? { stallMs: summarize(stalls, 1) } : {}),
      ...(metrics.snapshots.length ? { snapshotMs: summarize(metrics.snapshots, 1) } : {}),
      ...(metrics.persists.length ? { persistMs: summarize(metrics.persists, 1) } : {}),
      weightsSha256,
    };
  } finally {
    rmrf(dir);
  }
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const everyS = numArg('--every', 2);
  const steps = numArg('--steps', QUICK ? 8 : 30);
  const variants: Variant[] = process.argv.includes('--no-sync') ? ['none', 'async'] : ['none', 'async', 'sync'];
  log(`async-commit: ${WIDE_MLP}, ${steps} steps of 64, a checkpoint every ${everyS} s, backend ${backend.name}`);
  const runs: RunRecord[] = [];
  for (const v of variants) {
    const rec = await run(v, steps, everyS, backend);
    log(`  ${v}: ${rec.wallMs} ms, ${rec.samplesPerSec} samples/s, ${rec.commits} intermediate commits`);
    runs.push(rec);
  }
  const by = (v: Variant) => runs.find((r) => r.variant === v);
  const none = by('none')!;
  const asyncRun = by('async')!;
  const syncRun = by('sync');
  const hashes = new Set(runs.map((r) => r.weightsSha256));
  const result = {
    bench: 'async-commit',
    machine: machine(backend.name),
    model: { name: WIDE_MLP, parameters: 24_202_250, weightsMB: 96.8, withAdamMB: 290.4 },
    everySeconds: everyS,
    steps,
    runs,
    ratios: {
      asyncOverNone: round(asyncRun.samplesPerSec / none.samplesPerSec, 3),
      ...(syncRun ? { syncOverNone: round(syncRun.samplesPerSec / none.samplesPerSec, 3) } : {}),
    },
    // Checkpoints do not change the numbers: every variant ends with the same weights.
    sameWeights: hashes.size === 1,
    goals: { asyncOverNone: 0.95, stallMsMedian: 120 },
  };
  table(
    'async commit (wide-mlp)',
    runs.map((r) => ({
      variant: r.variant,
      samplesPerSec: r.samplesPerSec,
      ratio: round(r.samplesPerSec / none.samplesPerSec, 3),
      commits: r.commits,
      stallShare: r.stallShare,
      stallP50ms: r.stallMs?.median ?? '-',
      stallMaxMs: r.stallMs?.max ?? '-',
      snapshotP50ms: r.snapshotMs?.median ?? '-',
      persistP50ms: r.persistMs?.median ?? '-',
    })),
  );
  emit(result);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
