// Overhead of durability: the same spec trained (a) as a plain loop (Trainer.train, no checkpoints, no Temporal),
// (b) the same loop committing a checkpoint every N steps through CheckpointManager on a local fs store, exactly as
// trainChunk commits (activities/commit.ts), and
// (c) as a real durable-train run (dev server + worker process; one chunk = N steps, each ending in a commit, then
// retention). N is chosen from the measured step time for checkpoint intervals of ~5, 30 and 120 s of training; c
// also runs at the spec default (chunkSteps 100). Runs are interleaved (a, b..., c... then reversed) and repeated;
// ratios are per repetition (b/a and c/a of the same repetition), median over repetitions.
//
//   npm run build && node dist/bench/overhead.js [--quick] [--reps 3] [--models mnist-cnn,mnist-mlp] [--seconds 120]
//
// Goals: c/a <= 1.05 at the default interval, b/a <= 1.02.
import * as os from 'node:os';
import * as path from 'node:path';
import { commitTrainer } from '../activities/commit';
import { specHash } from '../activities/fingerprint';
import { CheckpointManager, FsCheckpointStore } from '../checkpoint';
import type { RunSpec } from '../spec/types';
import { Trainer } from '../training';
import { initBackend, type BackendInfo } from '../training/backend';
import {
  QUICK,
  arg,
  dirStats,
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
  selfCpuSeconds,
  summarize,
  table,
  tmpDir,
} from './common';
import { shutdown, startCluster, startWorker, timedRun, type TestCluster, type WorkerProcess } from './runs';

type Model = 'mnist-mlp' | 'mnist-cnn';
/** The spec defaults a user who sets neither chunkSteps nor chunkSeconds gets. */
const DEFAULTS = mnistSpec({ model: 'mnist-mlp', trainLimit: 640, testLimit: 100, epochs: 1, storage: 'file:///x' });

interface Interval {
  label: string;
  seconds: number;
  steps: number;
}

interface Plan {
  model: Model;
  msPerStep: number;
  trainLimit: number;
  testLimit: number;
  epochs: number;
  stepsPerEpoch: number;
  totalSteps: number;
  intervals: Interval[];
  defaultChunkSteps: number;
}

interface RunRecord {
  rep: number;
  variant: string;
  wallMs: number;
  cpuS: number;
  commits?: number;
  commitMs?: number;
  chunks?: number;
  trainMs?: number;
  retentionMs?: number;
  retentionFirstLastTenth?: [number, number];
  /** What the run left in its checkpoint directory (retention keeps 5 manifests; blob GC spares blobs < 1 h old). */
  disk?: { manifests: number; files: number; mib: number };
  perChunk?: Record<string, number>;
  loadavg1m: number;
}

/** (a) the plain loop. */
async function plainRun(spec: RunSpec, steps: number): Promise<{ wallMs: number; cpuS: number }> {
  const c0 = selfCpuSeconds();
  const t0 = now();
  const trainer = await Trainer.create(spec);
  const r = await trainer.train({ maxSteps: steps });
  trainer.dispose();
  const wallMs = now() - t0;
  if (r.stepsRun !== steps) throw new Error(`plain run: ${r.stepsRun} steps, expected ${steps}`);
  return { wallMs, cpuS: selfCpuSeconds() - c0 };
}

/** (b) the plain loop plus a CheckpointManager commit every `every` steps and at the end (as a chunk ends). */
async function committingRun(
  spec: RunSpec,
  steps: number,
  every: number,
  backend: BackendInfo,
  dir: string,
): Promise<{ wallMs: number; cpuS: number; commits: number; commitMs: number }> {
  const manager = new CheckpointManager(new FsCheckpointStore(dir), 'bench-b');
  const hash = specHash(spec);
  let parent: { runId: string; id: string } | null = null;
  let commits = 0;
  let commitMs = 0;
  const c0 = selfCpuSeconds();
  const t0 = now();
  const trainer = await Trainer.create(spec);
  const commit = async (reason: string) => {
    const s0 = now();
    const m = await commitTrainer(manager, trainer, { backend, specHash: hash, parent, reason });
    parent = { runId: m.runId, id: m.id };
    commits++;
    commitMs += now() - s0;
  };
  const r = await trainer.train({
    maxSteps: steps,
    onStep: async (p) => {
      if (p.step % every === 0 && p.step < steps) await commit('time');
    },
  });
  await commit('chunk-end');
  trainer.dispose();
  const wallMs = now() - t0;
  if (r.stepsRun !== steps) throw new Error(`committing run: ${r.stepsRun} steps, expected ${steps}`);
  return { wallMs, cpuS: selfCpuSeconds() - c0, commits, commitMs };
}

/** Measured ms per training step (after warm-up), away from an epoch end. */
async function calibrate(model: Model, trainLimit: number, testLimit: number): Promise<number> {
  const spec = mnistSpec({ model, trainLimit, testLimit, epochs: 1, storage: 'file:///nonexistent' });
  const trainer = await Trainer.create(spec);
  const stepsPerEpoch = Math.ceil(trainLimit / 64);
  const warm = Math.min(3, stepsPerEpoch - 2);
  await trainer.train({ maxSteps: warm });
  const budgetMs = QUICK ? 300 : 3000;
  let steps = 0;
  const t0 = now();
  while (now() - t0 < budgetMs && warm + steps < stepsPerEpoch - 1) {
    await trainer.train({ maxSteps: 1 });
    steps++;
  }
  const ms = (now() - t0) / steps;
  trainer.dispose();
  return ms;
}

function planFor(model: Model, msPerStep: number, targetSeconds: number): Plan {
  if (QUICK) {
    const trainLimit = 640;
    const stepsPerEpoch = 10;
    const epochs = 2;
    const totalSteps = epochs * stepsPerEpoch;
    return {
      model,
      msPerStep,
      trainLimit,
      testLimit: 200,
      epochs,
      stepsPerEpoch,
      totalSteps,
      intervals: [
        { label: '~5s', seconds: 5, steps: 2 },
        { label: '~30s', seconds: 30, steps: 5 },
        { label: '~120s', seconds: 120, steps: totalSteps },
      ],
      defaultChunkSteps: Math.min(DEFAULTS.chunkSteps, totalSteps),
    };
  }
  // About targetSeconds of training: a part of one epoch (the first trainLimit examples) or whole epochs.
  const want = Math.max(1, Math.round((targetSeconds * 1000) / msPerStep));
  const fullEpoch = Math.ceil(60000 / 64);
  const trainLimit = want < fullEpoch ? want * 64 : 60000;
  const stepsPerEpoch = Math.ceil(trainLimit / 64);
  const epochs = want < fullEpoch ? 1 : Math.round(want / fullEpoch);
  const totalSteps = epochs * stepsPerEpoch;
  const steps = (s: number) => Math.max(1, Math.min(totalSteps, Math.round((s * 1000) / msPerStep)));
  return {
    model,
    msPerStep,
    trainLimit,
    testLimit: 10000,
    epochs,
    stepsPerEpoch,
    totalSteps,
    intervals: [5, 30, 120].map((s) => ({ label: `~${s}s`, seconds: s, steps: steps(s) })),
    // What the defaults give for this step time: chunkSteps or chunkSeconds of steps, whichever is fewer.
    defaultChunkSteps: Math.min(DEFAULTS.chunkSteps, steps(DEFAULTS.chunkSeconds)),
  };
}

async function main(): Promise<void> {
  const reps = numArg('--reps', QUICK ? 1 : 3);
  const targetSeconds = numArg('--seconds', 120);
  const models = (arg('--models') ?? 'mnist-cnn,mnist-mlp').split(',') as Model[];
  const backend = await initBackend();
  const m0 = machine(backend.name);
  const workers: WorkerProcess[] = [];
  let cluster: TestCluster | null = null;
  const results: Array<Record<string, unknown>> = [];
  const goalRows: Array<Record<string, unknown>> = [];
  try {
    cluster = await startCluster();
    const worker = await startWorker(cluster);
    workers.push(worker);
    let runSeq = 0;

    for (const model of models) {
      const limits = QUICK ? { trainLimit: 640, testLimit: 200 } : { trainLimit: 60000, testLimit: 10000 };
      const msPerStep = await calibrate(model, limits.trainLimit, limits.testLimit);
      const plan = planFor(model, msPerStep, targetSeconds);
      log(
        `overhead: ${model}: ${round(msPerStep, 2)} ms/step -> ${plan.totalSteps} steps (${plan.epochs} epoch(s)), ` +
          `intervals ${plan.intervals.map((i) => `${i.label}=${i.steps} steps`).join(', ')}, default chunk ${plan.defaultChunkSteps}`,
      );
      // c@interval: chunks of exactly N steps (no time bound); c@default: the spec defaults (chunkSteps and
      // chunkSeconds left out), which is what a user who sets neither gets.
      const specFor = (storage: string, chunkSteps?: number) =>
        mnistSpec({
          model,
          trainLimit: plan.trainLimit,
          testLimit: plan.testLimit,
          epochs: plan.epochs,
          storage,
          ...(chunkSteps !== undefined ? { chunkSteps, chunkSeconds: 86_400 } : {}),
        });

      // Warm the worker (backend, dataset, kernels) with a tiny durable run of this model.
      {
        const dir = tmpDir('dt-bench-warm-');
        const warm = mnistSpec({
          model,
          trainLimit: 640,
          testLimit: 100,
          epochs: 1,
          chunkSteps: 5,
          storage: `file://${dir}`,
        });
        await timedRun(cluster, worker, warm, `warmup-${model}-${runSeq++}`);
        rmrf(dir);
      }

      const variants: string[] = [
        'a',
        ...plan.intervals.map((i) => `b@${i.label}`),
        ...plan.intervals.map((i) => `c@${i.label}`),
        'c@default',
      ];
      const stepsOf = (v: string): number => {
        if (v === 'c@default') return plan.defaultChunkSteps;
        return plan.intervals.find((i) => v.endsWith(`@${i.label}`))!.steps;
      };
      const runs: RunRecord[] = [];
      for (let rep = 0; rep < reps; rep++) {
        for (const variant of interleavedOrder(variants, rep)) {
          const dir = tmpDir('dt-bench-ovh-');
          const load = round(os.loadavg()[0], 2);
          let rec: RunRecord;
          if (variant === 'a') {
            const r = await plainRun(specFor(`file://${dir}`), plan.totalSteps);
            rec = { rep, variant, wallMs: r.wallMs, cpuS: r.cpuS, loadavg1m: load };
          } else if (variant.startsWith('b@')) {
            const r = await committingRun(specFor(`file://${dir}`), plan.totalSteps, stepsOf(variant), backend, dir);
            rec = {
              rep,
              variant,
              wallMs: r.wallMs,
              cpuS: r.cpuS,
              commits: r.commits,
              commitMs: r.commitMs,
              loadavg1m: load,
            };
          } else {
            const spec = specFor(
              `file://${path.join(dir, 'checkpoints')}`,
              variant === 'c@default' ? undefined : stepsOf(variant),
            );
            const r = await timedRun(
              cluster,
              worker,
              spec,
              `ovh-${model}-${variant.replace(/[^a-z0-9]/gi, '')}-${runSeq++}`,
            );
            if (r.result.step !== plan.totalSteps) throw new Error(`durable run ended at step ${r.result.step}`);
            const ck = path.join(dir, 'checkpoints', r.runId);
            const all = dirStats(ck);
            rec = {
              rep,
              variant,
              wallMs: r.wallMs,
              cpuS: r.cpu.worker + r.cpu.server + r.cpu.bench,
              commits: r.chunks.commits,
              commitMs: r.chunks.commitMs,
              chunks: r.chunks.chunks,
              trainMs: r.chunks.trainMs,
              retentionMs: r.chunks.retentionMs,
              retentionFirstLastTenth: [
                round(r.chunks.retentionExecFirstTenth, 1),
                round(r.chunks.retentionExecLastTenth, 1),
              ],
              disk: {
                manifests: dirStats(path.join(ck, 'manifests')).files,
                files: all.files,
                mib: round(all.bytes / 2 ** 20, 1),
              },
              perChunk: Object.fromEntries(Object.entries(r.chunks.perChunk).map(([k, v]) => [k, round(v, 1)])),
              loadavg1m: load,
            };
          }
          rmrf(dir);
          runs.push(rec);
          log(
            `  rep ${rep} ${variant.padEnd(10)} ${(rec.wallMs / 1000).toFixed(2)} s wall, ${rec.cpuS.toFixed(2)} s cpu` +
              (rec.commits !== undefined ? `, ${rec.commits} commits (${Math.round(rec.commitMs ?? 0)} ms)` : '') +
              (rec.chunks !== undefined
                ? `, ${rec.chunks} chunks, retention ${Math.round(rec.retentionMs ?? 0)} ms`
                : ''),
          );
        }
      }

      // Ratios per repetition against that repetition's plain run, then medians.
      const ratio = (variant: string, key: 'wallMs' | 'cpuS') =>
        summarize(
          [...Array(reps).keys()].map((rep) => {
            const a = runs.find((r) => r.rep === rep && r.variant === 'a')!;
            const x = runs.find((r) => r.rep === rep && r.variant === variant)!;
            return x[key] / a[key];
          }),
        );
      const aWall = summarize(runs.filter((r) => r.variant === 'a').map((r) => r.wallMs / 1000));
      const rows: Array<Record<string, unknown>> = [];
      const ratios: Record<string, unknown> = {};
      for (const v of variants.filter((x) => x !== 'a')) {
        const wall = ratio(v, 'wallMs');
        const cpu = ratio(v, 'cpuS');
        const mine = runs.filter((r) => r.variant === v);
        const commits = median(mine.map((r) => r.commits ?? NaN));
        const commitMs = median(mine.map((r) => r.commitMs ?? NaN));
        // Commit time measured inside the run, over the plain run's time: the noise-free part of b/a.
        const aMed = median(runs.filter((r) => r.variant === 'a').map((r) => r.wallMs));
        const derived = v.startsWith('b@') ? 1 + commitMs / aMed : NaN;
        const steps = stepsOf(v);
        ratios[v] = {
          everySteps: steps,
          everySeconds: round((steps * plan.msPerStep) / 1000, 2),
          wall,
          cpu,
          commitsPerRun: commits,
          commitMsPerRun: round(commitMs, 1),
          msPerCommit: round(commitMs / commits, 1),
          ...(v.startsWith('b@') ? { derivedFromCommitTime: round(derived, 4) } : {}),
          ...(v.startsWith('c@')
            ? {
                chunksPerRun: median(mine.map((r) => r.chunks ?? NaN)),
                retentionMsPerRun: round(median(mine.map((r) => r.retentionMs ?? NaN)), 1),
                perChunkMedians: mine[0]?.perChunk,
              }
            : {}),
        };
        rows.push({
          model,
          variant: v,
          everySteps: steps,
          'every s': round((steps * plan.msPerStep) / 1000, 1),
          'ratio (wall)': round(wall.median, 4),
          'min..max': `${wall.min.toFixed(3)}..${wall.max.toFixed(3)}`,
          'ratio (cpu)': round(cpu.median, 4),
          'ms/commit': round(commitMs / commits, 1),
          ...(v.startsWith('b@') ? { derived: round(derived, 4) } : {}),
        });
      }
      table(`overhead ${model}: plain run ${aWall.median.toFixed(1)} s (median of ${reps})`, rows);

      const get = (v: string) => (ratios[v] as { wall: { median: number } }).wall.median;
      const bWorst = Math.max(...plan.intervals.map((i) => get(`b@${i.label}`)));
      goalRows.push(
        {
          model,
          goal: `c/a <= 1.05 (spec defaults: chunkSteps ${DEFAULTS.chunkSteps}, chunkSeconds ${DEFAULTS.chunkSeconds})`,
          value: get('c@default'),
          pass: get('c@default') <= 1.05,
        },
        { model, goal: 'b/a <= 1.02 (every interval)', value: bWorst, pass: bWorst <= 1.02 },
      );
      results.push({
        model,
        plan,
        plainRunSeconds: aWall,
        ratios,
        runs: runs.map((r) => ({ ...r, wallMs: round(r.wallMs, 1), cpuS: round(r.cpuS, 2) })),
      });
    }
  } finally {
    await shutdown(cluster, workers);
  }
  table('overhead goals', goalRows);
  emit({
    bench: 'overhead',
    quick: QUICK,
    date: new Date().toISOString(),
    machine: { ...m0, loadavg1mEnd: round(os.loadavg()[0], 2) },
    reps,
    method:
      'a: Trainer.create + train(totalSteps) in this process; b: same + CheckpointManager.commit (fs) every N steps and at the end; ' +
      'c: durable run (chunkSteps N, everySeconds 0) on a dev server + worker process, start call to result. ' +
      'Ratios per repetition vs the same repetition a; median over repetitions. cpu ratios count worker+server+bench CPU seconds.',
    models: results,
    goals: goalRows,
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
