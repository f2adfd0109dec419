// Incremental checkpoints (row patches, checkpoint/rows.ts): an embedding table of --rows x 32 (default 50,000)
// trained with plain SGD on ids hashed over the table, through the chunk's commit path (activities/chunk/commits.ts,
// a local fs store), with a commit every K steps of 32 examples, K chosen so that about 1%, 5% and under 10% of the
// table's rows are touched between checkpoints. For each: the bytes each checkpoint newly stored against its whole
// size (per checkpoint, and amortised over every commit, the periodic full bases included), the snapshot's stall, and
// the time to load the newest checkpoint (a chain: base plus patches) against the first (whole).
//
//   npm run build && node dist/bench/incremental.js [--quick] [--rows 50000] [--commits 35]
//
// 35 commits cover two whole chains (a base and 16 patches each), so the amortised share is the steady state's.
//
// Goal: under 10% of the rows touched between checkpoints, bytes newly stored per checkpoint <= 15% of a whole one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TrainingMetrics } from '../activities/metrics';
import { CheckpointManager, FsCheckpointStore } from '../checkpoint';
import { validateSpec } from '../spec';
import { Trainer } from '../training';
import { initBackend, type BackendInfo } from '../training/backend';
import {
  QUICK,
  emit,
  log,
  machine,
  median,
  now,
  numArg,
  rmrf,
  round,
  summarize,
  table,
  tmpDir,
  handCommits,
} from './common';

const BATCH = 32;

/** Records each commit's snapshot stall (the copy and the changed-row scan). */
class StallMetrics extends TrainingMetrics {
  readonly stalls: number[] = [];
  override committed(...args: Parameters<TrainingMetrics['committed']>): void {
    const times = args[5];
    if (times) this.stalls.push((times.stallSeconds - (times.waitSeconds ?? 0)) * 1000);
    super.committed(...args);
  }
}

interface Case {
  touchedTarget: number;
  stepsBetween: number;
  rowsTouchedMax: number;
  commits: number;
  /** Newly stored / whole, for each checkpoint after the first. */
  sharePerCheckpoint: ReturnType<typeof summarize>;
  /** All bytes stored over all bytes a whole checkpoint each time would have stored. */
  shareAmortised: number;
  fullBases: number;
  longestChain: number;
  wholeBytes: number;
  snapshotStallMs: ReturnType<typeof summarize>;
  loadWholeMs: number;
  loadChainMs: number;
}

async function runCase(dir: string, csv: string, rows: number, touched: number, commits: number, backend: BackendInfo) {
  const stepsBetween = Math.max(1, Math.round((touched * rows) / BATCH));
  const runId = `emb-${Math.round(touched * 1000)}`;
  const spec = validateSpec({
    model: {
      layers: [
        { type: 'embedding', inputDim: rows, outputDim: 32 },
        { type: 'flatten' },
        { type: 'dense', units: 2, activation: 'softmax' },
      ],
    },
    dataset: { format: 'csv', path: `file://${csv}`, label: 'label', standardize: false, testFraction: 0.05 },
    epochs: 100,
    batchSize: BATCH,
    seed: 11,
    optimizer: { name: 'sgd', learningRate: 0.1 },
    checkpoint: { storage: `file://${dir}` },
  });
  const manager = new CheckpointManager(new FsCheckpointStore(dir), runId);
  const trainer = await Trainer.create(spec);
  const metrics = new StallMetrics({ defaultMetrics: false });
  const chunk = handCommits({ runId, manager, trainer, backend, metrics });
  try {
    for (let k = 0; k < commits; k++) {
      await trainer.train({ maxSteps: stepsBetween });
      await chunk.commit('time');
      log(`incremental: ${runId} commit ${k + 1}/${commits} at step ${trainer.state.step}`);
    }
  } finally {
    trainer.dispose();
  }
  const list = await manager.list();
  const manifests = await Promise.all(list.map((c) => manager.readManifest(c.id)));
  const chains = manifests.map((m) => Math.max(0, ...m.blobs.map((b) => b.rows?.patches.length ?? 0)));
  const timeLoad = async (id: string) => {
    const t0 = now();
    await manager.load(id);
    return now() - t0;
  };
  const longest = manifests[chains.indexOf(Math.max(...chains))];
  const loads = { whole: [] as number[], chain: [] as number[] };
  for (let i = 0; i < 3; i++) {
    loads.whole.push(await timeLoad(manifests[0].id));
    loads.chain.push(await timeLoad(longest.id));
  }
  const later = list.slice(1);
  const out: Case = {
    touchedTarget: touched,
    stepsBetween,
    rowsTouchedMax: Math.min(rows, stepsBetween * BATCH),
    commits: list.length,
    sharePerCheckpoint: summarize(
      later.map((c) => c.newBytes! / c.sizeBytes),
      4,
    ),
    shareAmortised: round(list.reduce((n, c) => n + c.newBytes!, 0) / list.reduce((n, c) => n + c.sizeBytes, 0), 4),
    fullBases: chains.filter((c) => c === 0).length,
    longestChain: Math.max(...chains),
    wholeBytes: list[0].sizeBytes,
    snapshotStallMs: summarize(metrics.stalls, 1),
    loadWholeMs: round(median(loads.whole), 1),
    loadChainMs: round(median(loads.chain), 1),
  };
  return out;
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const rows = numArg('--rows', 50_000);
  const commits = numArg('--commits', QUICK ? 4 : 35);
  const dir = tmpDir('dt-bench-incremental-');
  try {
    const csv = path.join(dir, 'ids.csv');
    const lines = ['id,label'];
    for (let i = 0; i < 100_000; i++) {
      const id = Math.imul(i + 1, 2654435761) >>> 0;
      lines.push(`${id % rows},${(id >>> 7) % 2}`);
    }
    fs.writeFileSync(csv, lines.join('\n') + '\n');
    const cases: Case[] = [];
    for (const touched of QUICK ? [0.05] : [0.01, 0.05, 0.095])
      cases.push(await runCase(dir, csv, rows, touched, commits, backend));
    table(
      `incremental checkpoints: ${rows} x 32 embedding, SGD, batch ${BATCH}`,
      cases.map((c) => ({
        'rows touched (max)': `${c.rowsTouchedMax} (${round((100 * c.rowsTouchedMax) / rows, 1)}%)`,
        commits: c.commits,
        'new/whole per ckpt (median)': c.sharePerCheckpoint.median,
        'new/whole amortised': c.shareAmortised,
        'full bases': c.fullBases,
        'longest chain': c.longestChain,
        'snapshot stall ms': c.snapshotStallMs.median,
        'load whole ms': c.loadWholeMs,
        'load chain ms': c.loadChainMs,
      })),
    );
    emit({ bench: 'incremental', machine: machine(backend.name), rows, cases });
  } finally {
    rmrf(dir);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
