// The two-phase checkpoint commit on a large model: the built-in wide-mlp (24.2 M parameters, 97 MB of float32
// weights, 290 MB with Adam's slots) trained on MNIST through the chunk's commit path (activities/chunk/commits.ts,
// a local fs store), the same number of steps in each variant:
//   none   no intermediate checkpoint (only the chunk-end commit)
//   async  a checkpoint every --every seconds (default 2): snapshot between steps, persist in the background, in the
//          persist thread (as a worker does)
//   async-main  the same, persisting on the training thread (hashing on the libuv pool: DURABLE_TRAIN_PERSIST_THREAD=0)
//   sync   the same interval, each commit awaited whole before the next step (the path before the two-phase commit)
// Samples/s counts the whole run (training plus the chunk-end commit). Each commit's training stall (its snapshot,
// plus any wait for the previous persist) and its background persist time are read from the commit metrics;
// stallShare (training time lost to commits over wall time) is the ratio by decomposition, robust to machine noise.
//
//   npm run build && node dist/bench/async-commit.js [--quick] [--steps 60] [--every 2] [--rounds 5] [--no-sync]
//     [--variants none,async] [--mlp 3072,3072,1024]   (another MLP on MNIST: hidden widths; 15 M parameters here)
//
// The variants run in turn, round after round; ratios are medians of each round's ratio to that round's `none`.
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
import { QUICK, arg, emit, log, machine, median, now, numArg, rmrf, round, summarize, table, tmpDir } from './common';

type Variant = 'none' | 'async' | 'async-main' | 'sync';

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

/** --mlp 3072,3072,1024: an MLP of those hidden widths on MNIST instead of the wide-mlp (784-...-10, relu). */
const HIDDEN = arg('--mlp')?.split(',').map(Number);
const MODEL = HIDDEN
  ? {
      layers: [
        { type: 'flatten' },
        ...HIDDEN.map((units) => ({ type: 'dense', units, activation: 'relu' })),
        { type: 'dense', units: 10 },
      ],
    }
  : { registered: WIDE_MLP };
const MODEL_NAME = HIDDEN ? `mlp 784-${HIDDEN.join('-')}-10` : WIDE_MLP;

function wideSpec(storage: string, trainLimit: number): RunSpec {
  return validateSpec({
    model: MODEL,
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
  /** Float32 parameters of the model (weights and biases), as the trainer counts them. */
  parameters: number;
  /** Process CPU time (all threads) over wall time: how much of the 2 cores the run kept busy. */
  cpuPerWall: number;
}

async function run(variant: Variant, steps: number, everyS: number, backend: BackendInfo): Promise<RunRecord> {
  const dir = tmpDir(`dt-bench-async-${variant}-`);
  try {
    const spec = wideSpec(`file://${dir}`, steps * 64);
    const manager = new CheckpointManager(new FsCheckpointStore(dir), `bench-${variant}`, {
      ...(variant === 'async-main' ? {} : { thread: { storage: `file://${dir}` } }),
    });
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
      everySeconds: variant.startsWith('async') ? everyS : 0,
      metrics,
      logError: (msg, meta) => log(`${msg}: ${String(meta.error)}`),
    });
    let syncCommits = 0;
    const syncStalls: number[] = [];
    let lastSync = now();
    let parent: { runId: string; id: string } | null = null;
    const t0 = now();
    const cpu0 = process.cpuUsage();
    const r = await trainer.train({
      maxSteps: steps - 1,
      onStep: async (p) => {
        if (variant.startsWith('async') && commits.due(p.step, p.totalSteps)) await commits.start('time');
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
    const cpu = process.cpuUsage(cpu0);
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
      parameters: trainer.info.parameterCount,
      cpuPerWall: round((cpu.user + cpu.system) / 1000 / wallMs, 3),
    };
  } finally {
    rmrf(dir);
  }
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const everyS = numArg('--every', 2);
  const steps = numArg('--steps', QUICK ? 8 : 60);
  const rounds = numArg('--rounds', QUICK ? 1 : 5);
  const only = arg('--variants')?.split(',') as Variant[] | undefined;
  const variants: Variant[] = only ?? [
    'none',
    'async',
    'async-main',
    ...(process.argv.includes('--no-sync') ? [] : ['sync' as const]),
  ];
  log(
    `async-commit: ${MODEL_NAME}, ${steps} steps of 64, a checkpoint every ${everyS} s, ${rounds} rounds, backend ${backend.name}`,
  );
  const runs: Array<RunRecord & { round: number; ratio: number }> = [];
  for (let round_ = 1; round_ <= rounds; round_++) {
    let none = 0;
    for (const v of variants) {
      const rec = await run(v, steps, everyS, backend);
      if (v === 'none') none = rec.samplesPerSec;
      const ratio = round(rec.samplesPerSec / none, 3);
      log(
        `  round ${round_} ${v}: ${rec.wallMs} ms, ${rec.samplesPerSec} samples/s (${ratio} of none), ${rec.commits} intermediate commits`,
      );
      runs.push({ ...rec, round: round_, ratio });
    }
  }
  const of = (v: Variant) => runs.filter((r) => r.variant === v);
  const mid = (xs: number[]) => round(median(xs), 3);
  const perVariant = variants.map((v) => {
    const rs = of(v);
    const ratios = rs.map((r) => r.ratio);
    return {
      variant: v,
      samplesPerSec: mid(rs.map((r) => r.samplesPerSec)),
      ratio: mid(ratios),
      ratioRange: `${Math.min(...ratios)}-${Math.max(...ratios)}`,
      commits: mid(rs.map((r) => r.commits)),
      stallShare: mid(rs.map((r) => r.stallShare)),
      cpuPerWall: mid(rs.map((r) => r.cpuPerWall)),
      stallP50ms: rs[0].stallMs ? mid(rs.map((r) => r.stallMs!.median)) : '-',
      snapshotP50ms: rs[0].snapshotMs ? mid(rs.map((r) => r.snapshotMs!.median)) : '-',
      persistP50ms: rs[0].persistMs ? mid(rs.map((r) => r.persistMs!.median)) : '-',
    };
  });
  const ratioOf = (v: Variant) => perVariant.find((r) => r.variant === v)?.ratio;
  const hashes = new Set(runs.map((r) => r.weightsSha256));
  const result = {
    bench: 'async-commit',
    machine: machine(backend.name),
    model: {
      name: MODEL_NAME,
      parameters: runs[0].parameters,
      weightsMB: round((runs[0].parameters * 4) / 1e6, 1),
      withAdamMB: round((runs[0].parameters * 12) / 1e6, 1),
    },
    everySeconds: everyS,
    steps,
    rounds,
    runs,
    perVariant,
    ratios: {
      asyncOverNone: ratioOf('async'),
      asyncMainOverNone: ratioOf('async-main'),
      ...(variants.includes('sync') ? { syncOverNone: ratioOf('sync') } : {}),
    },
    // Checkpoints do not change the numbers: every variant ends with the same weights.
    sameWeights: hashes.size === 1,
    goals: { asyncOverNone: 0.95, stallMsMedian: 120 },
  };
  table(`async commit (${MODEL_NAME}), medians of ${rounds} rounds`, perVariant);
  emit(result);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
