// Memory over many chunks: live tfjs tensors (tf.memory().numTensors), tensor bytes and process RSS after 1, 10
// and 100 chunks of trainChunk-like work, on four paths:
//   trainer-warm        one Trainer: train N steps, snapshot, CheckpointManager.commit, retention; repeat
//   trainer-restore     per chunk: load the last checkpoint, Trainer.fromSnapshot, train, snapshot, commit, dispose
//   trainChunk-warm     the real trainChunk + applyRetention activities (MockActivityEnvironment), warm trainer kept
//   trainChunk-restore  the same with warmRuns 0, so every chunk restores from its checkpoint
// Runs end one chunk after the last sample (the activity disposes a finished trainer), so leftovers show as well.
//
//   npm run build && node dist/bench/memory.js [--quick] [--models mnist-mlp,mnist-cnn]
//
// Goal: zero growth in live tensors (count after the last chunk == count after chunk 1; nothing left after a path).
import { MockActivityEnvironment } from '@temporalio/testing';
import * as tf from '@tensorflow/tfjs';
import { createActivities } from '../activities';
import { snapshotOf } from '../activities/commit';
import type { ChunkSummary, CheckpointRef } from '../activities/types';
import { CheckpointManager, FsCheckpointStore } from '../checkpoint';
import type { RunSpec } from '../spec/types';
import { Trainer, type TrainerSnapshot, type TrainerState } from '../training';
import { initBackend, type BackendInfo } from '../training/backend';
import { QUICK, arg, emit, gc, log, machine, mnistSpec, now, rmrf, round, table, tmpDir } from './common';

type Model = 'mnist-mlp' | 'mnist-cnn';
type PathName = 'trainer-warm' | 'trainer-restore' | 'trainChunk-warm' | 'trainChunk-restore';
const PATHS: PathName[] = ['trainer-warm', 'trainer-restore', 'trainChunk-warm', 'trainChunk-restore'];

interface Sample {
  chunk: number;
  numTensors: number;
  tensorMiB: number;
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  msPerChunk: number;
}

const MiB = 2 ** 20;

function sample(chunk: number, msPerChunk: number): Sample {
  gc();
  const m = tf.memory();
  const u = process.memoryUsage();
  return {
    chunk,
    numTensors: m.numTensors,
    tensorMiB: round(m.numBytes / MiB, 2),
    rssMiB: round(u.rss / MiB, 1),
    heapUsedMiB: round(u.heapUsed / MiB, 1),
    externalMiB: round(u.external / MiB, 1),
    msPerChunk: round(msPerChunk, 1),
  };
}

function commitArgs(snap: TrainerSnapshot, trainer: Trainer, backend: BackendInfo, parent: CheckpointRef | null) {
  const st: TrainerState = snap.state;
  return {
    step: st.step,
    epoch: st.epoch,
    createdAt: new Date().toISOString(),
    parent,
    blobs: snap.tensors,
    state: st,
    metrics: { learningRate: st.learningRate },
    fingerprints: { dataset: trainer.info.datasetFingerprint, model: trainer.info.modelFingerprint },
    backend: { name: backend.name, version: backend.version },
  };
}

async function runPath(
  path: PathName,
  spec: RunSpec,
  steps: number,
  chunks: number,
  marks: number[],
  backend: BackendInfo,
  dir: string,
): Promise<{ samples: Sample[]; before: number; after: number }> {
  gc();
  const before = tf.memory().numTensors;
  const samples: Sample[] = [];
  const runId = `mem-${path}`;
  const manager = new CheckpointManager(new FsCheckpointStore(dir), runId);
  let t0 = now();
  const mark = (i: number) => {
    if (marks.includes(i)) {
      samples.push(sample(i, (now() - t0) / i));
    }
  };

  if (path === 'trainer-warm' || path === 'trainer-restore') {
    let parent: CheckpointRef | null = null;
    let warm: Trainer | null = null;
    for (let i = 1; i <= chunks; i++) {
      let trainer: Trainer;
      if (path === 'trainer-warm') {
        warm ??= await Trainer.create(spec);
        trainer = warm;
      } else if (!parent) {
        trainer = await Trainer.create(spec);
      } else {
        const { manifest, blobs } = await manager.load(parent.id);
        trainer = await Trainer.fromSnapshot(spec, snapshotOf(manifest, blobs));
      }
      await trainer.train({ maxSteps: steps });
      const m = await manager.commit(commitArgs(trainer.snapshot(), trainer, backend, parent));
      parent = { runId, id: m.id };
      await manager.applyRetention({ keepLatest: 5 }, [m.id]);
      if (path === 'trainer-restore') trainer.dispose();
      mark(i);
    }
    warm?.dispose();
  } else {
    const activities = createActivities({ baseDir: dir, warmRuns: path === 'trainChunk-warm' ? 2 : 0 });
    const env = new MockActivityEnvironment({
      activityType: 'trainChunk',
      startToCloseTimeoutMs: 3_600_000,
      heartbeatTimeoutMs: 10_000,
    });
    const chunkSpec = { ...spec, checkpoint: { ...spec.checkpoint, storage: `file://${dir}` } };
    let from: CheckpointRef | null = null;
    t0 = now();
    for (let i = 1; i <= chunks; i++) {
      const s: ChunkSummary = await env.run(activities.trainChunk, { runId, spec: chunkSpec, from, steps });
      if (path === 'trainChunk-warm' && i > 1 && s.source !== 'warm') throw new Error(`chunk ${i} was ${s.source}`);
      if (path === 'trainChunk-restore' && i > 1 && s.source !== 'restored')
        throw new Error(`chunk ${i} was ${s.source}`);
      from = { runId: s.checkpoint.runId, id: s.checkpoint.id };
      await env.run(activities.applyRetention, { runId, spec: chunkSpec, protect: [s.checkpoint.id] });
      if (i === chunks && !s.done) throw new Error('the run should end with the last chunk');
      mark(i);
    }
  }
  gc();
  return { samples, before, after: tf.memory().numTensors };
}

async function main(): Promise<void> {
  const models = (arg('--models') ?? 'mnist-mlp,mnist-cnn').split(',') as Model[];
  const marks = QUICK ? [1, 2, 4] : [1, 10, 100];
  const chunks = marks[marks.length - 1];
  const backend = await initBackend();
  const m0 = machine(backend.name);
  const results: Array<Record<string, unknown>> = [];
  const rows: Array<Record<string, unknown>> = [];
  for (const model of models) {
    const steps = model === 'mnist-cnn' ? 3 : 20;
    // One epoch per chunk (each chunk ends with an evaluation); one chunk more than the last mark, so the last
    // sample is taken while the warm trainer is alive and the run's end (which disposes it) shows as leftover.
    const trainLimit = steps * 64;
    const epochs = chunks + 1;
    const spec = mnistSpec({ model, trainLimit, testLimit: 250, epochs, storage: 'file:///unused' });
    for (const path of PATHS) {
      const dir = tmpDir('dt-bench-mem-');
      try {
        const r = await runPath(path, spec, steps, chunks + 1, marks, backend, dir);
        const first = r.samples[0];
        const last = r.samples[r.samples.length - 1];
        const growth = last.numTensors - first.numTensors;
        const leftover = r.after - r.before;
        const pass = growth === 0 && leftover === 0;
        results.push({
          model,
          path,
          stepsPerChunk: steps,
          tensorsBefore: r.before,
          tensorsAfter: r.after,
          growth,
          leftover,
          pass,
          samples: r.samples,
        });
        for (const s of r.samples)
          rows.push({
            model,
            path,
            chunk: s.chunk,
            numTensors: s.numTensors,
            'tensor MiB': s.tensorMiB,
            'rss MiB': s.rssMiB,
            'heap MiB': s.heapUsedMiB,
            'ms/chunk': s.msPerChunk,
            ...(s === last ? { growth, leftover, goal: pass ? 'pass' : 'MISS' } : {}),
          });
        log(
          `memory: ${model} ${path}: tensors ${r.samples.map((s) => s.numTensors).join(' -> ')}, leftover ${leftover}`,
        );
      } finally {
        rmrf(dir);
      }
    }
  }
  table(
    'memory (after chunk k; growth = tensors(last) - tensors(1), leftover = tensors after the path - before)',
    rows,
  );
  emit({
    bench: 'memory',
    quick: QUICK,
    date: new Date().toISOString(),
    machine: m0,
    marks,
    goal: 'zero growth in live tensors',
    pass: results.every((r) => r.pass),
    results,
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
