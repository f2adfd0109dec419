// Memory over many asynchronous commits: one trainer, a commit every --every steps through the chunk's two-phase commit
// path (activities/chunk/commits.ts: snapshot into the previous snapshot's buffers, persist in the background, row
// patches), retention (keepLatest 2, no GC grace) every 10 commits so the disk stays small. Resident memory (RSS) and
// the V8 heap are sampled after a full GC at commit 10 and at the last commit; a leak per commit shows as growth.
//
//   npm run build && node dist/bench/commit-memory.js [--quick] [--model embedding|wide-mlp] [--commits 1000]
//     [--no-commit]   the same steps and samples without committing: what training alone does to memory
//     [--main-thread] persist on the training thread (hashing on the libuv pool) instead of the persist thread
//
// Models: `embedding` (50,000 x 32 table, SGD: every commit a row patch, a new chain every ~17) and `wide-mlp` (the
// 97 MB built-in, SGD: every commit a whole copy). Goal: RSS after the last commit within 5% of RSS after the 10th.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TrainingMetrics } from '../activities/metrics';
import { CheckpointManager, FsCheckpointStore } from '../checkpoint';
import { validateSpec, type RunSpec } from '../spec';
import { Trainer } from '../training';
import { initBackend } from '../training/backend';
import { WIDE_MLP } from '../training/wide-mlp';
import { QUICK, arg, emit, gc, log, machine, numArg, rmrf, round, table, tmpDir, handCommits } from './common';

const MiB = 2 ** 20;

function specOf(model: string, dir: string): { spec: RunSpec; every: number } {
  if (model === 'wide-mlp')
    return {
      every: 2,
      spec: validateSpec({
        model: { registered: WIDE_MLP },
        dataset: { name: 'mnist', trainLimit: 6400, testLimit: 64 },
        epochs: 1000,
        batchSize: 64,
        seed: 42,
        optimizer: { name: 'sgd', learningRate: 0.001 },
        checkpoint: { storage: `file://${dir}` },
      }),
    };
  const csv = path.join(dir, 'ids.csv');
  const lines = ['id,label'];
  for (let i = 0; i < 20_000; i++) {
    const id = Math.imul(i + 1, 2654435761) >>> 0;
    lines.push(`${id % 50_000},${(id >>> 7) % 2}`);
  }
  fs.writeFileSync(csv, lines.join('\n') + '\n');
  return {
    every: 10,
    spec: validateSpec({
      model: {
        layers: [
          { type: 'embedding', inputDim: 50_000, outputDim: 32 },
          { type: 'flatten' },
          { type: 'dense', units: 2, activation: 'softmax' },
        ],
      },
      dataset: { format: 'csv', path: `file://${csv}`, label: 'label', standardize: false, testFraction: 0.05 },
      epochs: 1000,
      batchSize: 32,
      seed: 11,
      optimizer: { name: 'sgd', learningRate: 0.1 },
      checkpoint: { storage: `file://${dir}` },
    }),
  };
}

interface Sample {
  commit: number;
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  numTensors: number;
}

function sample(commit: number): Sample {
  gc();
  const m = process.memoryUsage();
  return {
    commit,
    rssMiB: round(m.rss / MiB, 1),
    heapUsedMiB: round(m.heapUsed / MiB, 1),
    externalMiB: round((m.external + m.arrayBuffers) / MiB, 1),
    numTensors: tf.memory().numTensors,
  };
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const model = arg('--model') ?? 'embedding';
  const commits = numArg('--commits', QUICK ? 30 : 1000);
  const commit = !process.argv.includes('--no-commit');
  const dir = tmpDir('dt-bench-commit-memory-');
  process.env.DURABLE_TRAIN_DATA_ROOTS = dir;
  try {
    const { spec, every } = specOf(model, dir);
    const runId = `memory-${model}`;
    // As a worker persists: in the persist thread (--main-thread: on the training thread, as before 2026-12-07).
    const manager = new CheckpointManager(new FsCheckpointStore(dir), runId, {
      blobGcGraceMs: 0,
      ...(process.argv.includes('--main-thread') ? {} : { thread: { storage: `file://${dir}` } }),
    });
    const trainer = await Trainer.create(spec);
    const commitsOf = handCommits({
      runId,
      manager,
      trainer,
      backend,
      metrics: new TrainingMetrics({ defaultMetrics: false }),
    });
    const samples: Sample[] = [];
    const t0 = Date.now();
    try {
      for (let k = 1; k <= commits; k++) {
        await trainer.train({ maxSteps: every });
        if (commit) await commitsOf.start('time'); // the persist runs while the next steps train
        if (commit && k % 10 === 0) {
          await commitsOf.settle();
          await manager.applyRetention({ keepLatest: 2 }, commitsOf.lastCommitted ? [commitsOf.lastCommitted.id] : []);
        }
        if (k === 10 || k === commits || k % 100 === 0) {
          samples.push(sample(k));
          log(`commit-memory: ${model} ${k}/${commits}: rss ${samples.at(-1)!.rssMiB} MiB`);
        }
      }
      await commitsOf.settle();
    } finally {
      trainer.dispose();
    }
    const first = samples.find((s) => s.commit === 10)!;
    const last = samples.at(-1)!;
    table(
      commit
        ? `memory over ${commits} async commits (${model}, a commit every ${every} steps)`
        : `memory over the same ${commits * every} steps without commits (${model})`,
      samples.map((s) => ({ ...s })),
    );
    emit({
      bench: 'commit-memory',
      machine: machine(backend.name),
      model,
      commits: commit ? commits : 0,
      samplePoints: commits,
      stepsBetween: every,
      seconds: round((Date.now() - t0) / 1000, 1),
      rssGrowth: round(last.rssMiB / first.rssMiB - 1, 4),
      heapGrowthMiB: round(last.heapUsedMiB - first.heapUsedMiB, 1),
      samples,
    });
  } finally {
    rmrf(dir);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
