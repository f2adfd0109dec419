// Orchestration floor: what one chunk costs beyond its training steps on a real dev server and worker process
// (schedule trainChunk, start it, commit, complete, workflow task, applyRetention, next schedule). A tiny spec
// (784-128-10 MLP, batch 8, 100 steps) runs with chunkSteps 1, 10 and 100, interleaved and repeated;
// ms per chunk = (wall(chunkSteps 1) - wall(chunkSteps 100)) / (chunks difference), and the history gives the split.
// Then retention's verification cost alone: CheckpointManager.applyRetention({keepLatest: 5}) with
// retentionVerify 'full' (re-hash every kept checkpoint, the default) vs 'quick' (sizes only), per checkpoint size.
//
//   npm run build && node dist/bench/orchestration.js [--quick] [--reps 3]
import * as path from 'node:path';
import { CheckpointManager, FsCheckpointStore } from '../checkpoint';
import { initBackend } from '../training/backend';
import {
  QUICK,
  adamBlobs,
  emit,
  interleavedOrder,
  log,
  machine,
  median,
  mnistSpec,
  now,
  numArg,
  rmrf,
  round,
  summarize,
  table,
  tmpDir,
} from './common';
import {
  shutdown,
  startCluster,
  startWorker,
  timedRun,
  type DurableRun,
  type TestCluster,
  type WorkerProcess,
} from './runs';

const MiB = 2 ** 20;

/** An fs store that adds up the time spent in each operation (they may overlap: sums, not wall time). */
class TimedStore extends FsCheckpointStore {
  readonly ms: Record<string, number> = {};
  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const t = now();
    try {
      return await fn();
    } finally {
      this.ms[op] = (this.ms[op] ?? 0) + now() - t;
    }
  }
  override read(key: string) {
    return this.timed(key.includes('/manifests/') ? 'readManifest' : 'readBlob', () => super.read(key));
  }
  override list(prefix: string) {
    return this.timed('list', () => super.list(prefix));
  }
  override listDetailed(prefix: string) {
    return this.timed('list', () => super.listDetailed(prefix));
  }
  override delete(key: string) {
    return this.timed(key.includes('/manifests/') ? 'deleteManifest' : 'deleteBlob', () => super.delete(key));
  }
  override sweepTemp(prefix: string, olderThanMs: number) {
    return this.timed('sweepTemp', () => super.sweepTemp(prefix, olderThanMs));
  }
  reset(): void {
    for (const k of Object.keys(this.ms)) delete this.ms[k];
  }
}

async function retentionCost(mib: number, reps: number): Promise<Record<string, unknown>> {
  const dir = tmpDir('dt-bench-ret-');
  try {
    const store = new TimedStore(dir);
    const managers = {
      full: new CheckpointManager(store, 'ret', { retentionVerify: 'full' }),
      quick: new CheckpointManager(store, 'ret', { retentionVerify: 'quick' }),
    };
    let step = 0;
    const commitOne = async () => {
      step += 1;
      const m = await managers.full.commit({
        step,
        epoch: 0,
        createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
        parent: null,
        blobs: adamBlobs(mib * MiB),
        state: null,
        metrics: {},
        fingerprints: {},
        backend: { name: 'bench', version: '0' },
      });
      return m.id;
    };
    for (let i = 0; i < 5; i++) await commitOne();
    const times: Record<'full' | 'quick', number[]> = { full: [], quick: [] };
    const opMs: Record<'full' | 'quick', Array<Record<string, number>>> = { full: [], quick: [] };
    for (let rep = 0; rep < reps; rep++) {
      for (const mode of interleavedOrder(['full', 'quick'] as const, rep)) {
        const id = await commitOne(); // 6 checkpoints: retention keeps 5 and deletes 1, as after every chunk
        store.reset();
        const t = now();
        const r = await managers[mode].applyRetention({ keepLatest: 5 }, [id]);
        times[mode].push(now() - t);
        opMs[mode].push({ ...store.ms });
        if (r.deleted.length !== 1) throw new Error(`retention deleted ${r.deleted.length}, expected 1`);
      }
    }
    return {
      checkpointMiB: mib,
      keepLatest: 5,
      fullMs: summarize(times.full, 1),
      quickMs: summarize(times.quick, 1),
      // Summed time inside store calls (concurrent calls overlap), medians: where retention spends its time.
      storeOpsMs: Object.fromEntries(
        (['full', 'quick'] as const).map((mode) => [
          mode,
          Object.fromEntries(
            [...new Set(opMs[mode].flatMap((o) => Object.keys(o)))].map((op) => [
              op,
              round(median(opMs[mode].map((o) => o[op] ?? 0)), 1),
            ]),
          ),
        ]),
      ),
      blobsPerCheckpoint: adamBlobs(1024).length,
    };
  } finally {
    rmrf(dir);
  }
}

async function main(): Promise<void> {
  const reps = numArg('--reps', QUICK ? 1 : 3);
  const backend = await initBackend();
  const m0 = machine(backend.name);
  const totalSteps = QUICK ? 10 : 100;
  const chunkSizes = QUICK ? [1, 10] : [1, 10, 100];
  const workers: WorkerProcess[] = [];
  let cluster: TestCluster | null = null;
  const runs: Array<{ rep: number; chunkSteps: number; run: DurableRun }> = [];
  try {
    cluster = await startCluster();
    const worker = await startWorker(cluster);
    workers.push(worker);
    const specFor = (dir: string, chunkSteps: number) =>
      mnistSpec({
        model: 'mnist-mlp',
        trainLimit: totalSteps * 8,
        testLimit: 100,
        epochs: 1,
        batchSize: 8,
        chunkSteps,
        storage: `file://${path.join(dir, 'checkpoints')}`,
      });
    let seq = 0;
    {
      const dir = tmpDir('dt-bench-orch-');
      await timedRun(cluster, worker, specFor(dir, 5), `orch-warmup`);
      rmrf(dir);
    }
    for (let rep = 0; rep < reps; rep++) {
      for (const chunkSteps of interleavedOrder(chunkSizes, rep)) {
        const dir = tmpDir('dt-bench-orch-');
        const run = await timedRun(cluster, worker, specFor(dir, chunkSteps), `orch-${chunkSteps}-${seq++}`);
        rmrf(dir);
        runs.push({ rep, chunkSteps, run });
        log(
          `orchestration: rep ${rep} chunkSteps ${chunkSteps}: ${run.chunks.chunks} chunks in ${(run.wallMs / 1000).toFixed(2)} s ` +
            `(period ${round(run.chunks.perChunk.period, 1)} ms, train ${run.chunks.trainMs} ms total)`,
        );
      }
    }
  } finally {
    await shutdown(cluster, workers);
  }

  const large = Math.max(...chunkSizes);
  const perChunk = (small: number) =>
    summarize(
      [...Array(reps).keys()].map((rep) => {
        const a = runs.find((r) => r.rep === rep && r.chunkSteps === small)!.run;
        const b = runs.find((r) => r.rep === rep && r.chunkSteps === large)!.run;
        return (a.wallMs - b.wallMs) / (a.chunks.chunks - b.chunks.chunks);
      }),
      1,
    );
  const derived: Record<string, unknown> = {};
  for (const s of chunkSizes.filter((c) => c !== large)) derived[`chunkSteps ${s} vs ${large}`] = perChunk(s);
  const ones = runs.filter((r) => r.chunkSteps === 1).map((r) => r.run.chunks.perChunk);
  const split = Object.fromEntries(
    Object.keys(ones[0]).map((k) => [k, round(median(ones.map((o) => o[k as keyof typeof o])), 1)]),
  );
  const msPerChunk = perChunk(1).median;

  const retention: Array<Record<string, unknown>> = [];
  for (const mib of QUICK ? [1.4] : [1.4, 2.8, 100]) {
    retention.push(await retentionCost(mib, QUICK ? 1 : 3));
    log(`orchestration: retention cost for ${mib} MiB checkpoints measured`);
  }

  const rows = chunkSizes.map((c) => {
    const mine = runs.filter((r) => r.chunkSteps === c).map((r) => r.run);
    return {
      chunkSteps: c,
      chunks: mine[0].chunks.chunks,
      'wall s (median)': round(median(mine.map((r) => r.wallMs)) / 1000, 2),
      'train ms/chunk': round(median(mine.map((r) => r.chunks.perChunk.train)), 1),
      'commit ms/chunk': round(median(mine.map((r) => r.chunks.perChunk.commit)), 1),
      'retention ms/chunk': round(median(mine.map((r) => r.chunks.perChunk.retentionExec)), 1),
      'period ms': round(median(mine.map((r) => r.chunks.perChunk.period)), 1),
    };
  });
  table(`orchestration: ${totalSteps} steps of a tiny spec; derived ${msPerChunk} ms per chunk`, rows);
  table('orchestration: per-chunk split (medians, chunkSteps 1)', [split]);
  table(
    'retention verification (applyRetention keepLatest 5, 6 checkpoints)',
    retention.map((r) => {
      const ops = (r.storeOpsMs as Record<string, Record<string, number>>).full;
      return {
        'checkpoint MiB': r.checkpointMiB,
        'full ms': (r.fullMs as { median: number }).median,
        'quick ms': (r.quickMs as { median: number }).median,
        'full: read blobs': ops.readBlob,
        'read manifests': ops.readManifest,
        'delete blobs': ops.deleteBlob,
        'delete manifest': ops.deleteManifest,
        list: ops.list,
        sweep: ops.sweepTemp,
      };
    }),
  );
  const at = (pct: number) => round(msPerChunk / 1000 / (pct / 100), 1);
  emit({
    bench: 'orchestration',
    quick: QUICK,
    date: new Date().toISOString(),
    machine: m0,
    reps,
    spec: { model: 'mnist-mlp', batchSize: 8, totalSteps, chunkSizes },
    msPerChunk: derived,
    perChunkSplitMs: split,
    runs: runs.map((r) => ({
      rep: r.rep,
      chunkSteps: r.chunkSteps,
      wallMs: round(r.run.wallMs, 1),
      chunks: r.run.chunks.chunks,
      trainMs: r.run.chunks.trainMs,
      commitMs: r.run.chunks.commitMs,
      retentionMs: round(r.run.chunks.retentionMs, 1),
      workflowTasks: r.run.timeline.workflowTasks,
      historyEvents: r.run.timeline.events,
      cpuS: {
        worker: round(r.run.cpu.worker, 2),
        server: round(r.run.cpu.server, 2),
        bench: round(r.run.cpu.bench, 2),
      },
    })),
    retention,
    chunkLengthForOverhead: {
      note: 'seconds of training per chunk so that the per-chunk cost is at most this share of it',
      '1%': at(1),
      '2%': at(2),
      '5%': at(5),
    },
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
