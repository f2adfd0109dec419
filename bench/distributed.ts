// Distributed training (spec.distributed): real dev server, real worker processes, runs started as `start` does.
//
//   pair: mnist-cnn, 1 replica on 1 worker against 2 replicas on 2 workers, same spec otherwise (same epochs: the same
//         total samples), measured as total samples / wall time of the run; test accuracy of both; sync overhead per
//         round = (sync closed - last replica closed) / round period. Goals: throughput >= 1.7x, accuracy within 0.5
//         points, sync overhead <= 5% at the default H.
//   wide: a simulation of a wide run on one host: W replicas of a tiny model (mnist-mlp, few examples per replica) on
//         2 worker processes with --slots W/2, to see the orchestration cost per round (events, period, sync time,
//         bytes written to the store) as the replica count grows.
//
//   npm run build && node dist/bench/distributed.js [--quick] [--only pair|wide] [--sync-every 50] [--wide 8,32]
//     [--outer average,nesterov:LR:MOMENTUM,average@lr=0.0014,...] (2-replica runs, one per outer optimizer, each
//     optionally with its own inner learning rate; default a plain average with the spec's)
//     [--spec FILE] (the pair's spec, e.g. the main job's examples/mnist-cnn.json, with a distributed block added)
//     [--repeat R] (the sequence R times, interleaved; the throughput ratio is the median of the pairwise ratios)
//     [--backend wasm]
//     [--replica-modes process,worker] (each 2-replica run once per mode: replicas in the worker's training processes,
//     the default, or in the worker itself, DURABLE_TRAIN_REPLICA_PROCESS=0; interleaved in every repetition)
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunSpec } from '../spec/types';
import { validateSpec } from '../spec/validate';
import type { RoundSummary } from '../activities/replica-types';
import { initBackend } from '../training/backend';
import { QUICK, arg, dirStats, emit, log, machine, median, now, numArg, round, table } from './common';
import type { Timeline } from './common';
import { activityTimeline } from './common';
import { shutdown, startCluster, startTraining, startWorker, type TestCluster, type WorkerProcess } from './runs';
import type { RunResult } from '../workflows/progress';

interface RoundCost {
  rounds: number;
  /** Medians per round (ms). */
  periodMs: number;
  replicaExecMs: number;
  /** From the last replica's close to the sync's close: gather + combine + epoch end + commit + scheduling. */
  syncWallMs: number;
  syncExecMs: number;
  /** syncWallMs / periodMs, median over rounds. */
  syncFraction: number;
  /** The same over the rounds that do not end an epoch (no evaluation of the test split inside the sync). */
  syncFractionNoEval: number | null;
  syncWallMsNoEval: number | null;
  eventsPerRound: number;
  retried: number;
}

function roundCosts(t: Timeline): RoundCost {
  const syncs = t.activities.filter((a) => a.type === 'syncReplicas' && a.outcome === 'completed');
  const reps = t.activities.filter((a) => a.type === 'trainReplica' && a.outcome === 'completed');
  const period: number[] = [];
  const syncWall: number[] = [];
  const syncExec: number[] = [];
  const frac: number[] = [];
  const fracNoEval: number[] = [];
  const syncWallNoEval: number[] = [];
  const repExec: number[] = [];
  let prevEnd = t.startMs;
  let retried = 0;
  for (const s of syncs) {
    // This round's replicas: scheduled after the previous sync closed, closed before this sync was scheduled.
    const mine = reps.filter((r) => r.scheduledMs >= prevEnd - 1 && r.closedMs! <= s.scheduledMs + 1);
    if (!mine.length) continue;
    const lastClose = Math.max(...mine.map((r) => r.closedMs!));
    const firstSched = Math.min(...mine.map((r) => r.scheduledMs));
    const p = s.closedMs! - firstSched;
    period.push(p);
    syncWall.push(s.closedMs! - lastClose);
    syncExec.push(s.closedMs! - (s.startedMs ?? s.scheduledMs));
    frac.push((s.closedMs! - lastClose) / p);
    if (!(s.result as RoundSummary).evals.length) {
      fracNoEval.push((s.closedMs! - lastClose) / p);
      syncWallNoEval.push(s.closedMs! - lastClose);
    }
    for (const r of mine) {
      repExec.push(r.closedMs! - (r.startedMs ?? r.scheduledMs));
      if ((r.attempt ?? 1) > 1) retried++;
    }
    prevEnd = s.closedMs!;
  }
  return {
    rounds: syncs.length,
    periodMs: round(median(period), 1),
    replicaExecMs: round(median(repExec), 1),
    syncWallMs: round(median(syncWall), 1),
    syncExecMs: round(median(syncExec), 1),
    syncFraction: round(median(frac), 4),
    syncFractionNoEval: fracNoEval.length ? round(median(fracNoEval), 4) : null,
    syncWallMsNoEval: syncWallNoEval.length ? round(median(syncWallNoEval), 1) : null,
    eventsPerRound: round(t.events / Math.max(1, syncs.length), 1),
    retried,
  };
}

function workers(cluster: TestCluster, n: number, slots = 1, env: NodeJS.ProcessEnv = {}): Promise<WorkerProcess[]> {
  return Promise.all(
    Array.from({ length: n }, () => startWorker(cluster, { ...env, DURABLE_TRAIN_SLOTS: String(slots) })),
  );
}

async function timed(cluster: TestCluster, spec: RunSpec, runId: string) {
  const t0 = now();
  const handle = await startTraining(cluster, spec, runId);
  const result = (await handle.result()) as RunResult;
  const wallMs = now() - t0;
  if (result.status !== 'completed') throw new Error(`run ${runId} ended ${result.status}`);
  const timeline = await activityTimeline(handle);
  return { result, wallMs, timeline, cost: roundCosts(timeline) };
}

/** One `--outer` value: `nesterov:LR:MOMENTUM` (DiLoCo's outer step is nesterov:0.7:0.9) or `average` (the default). */
function parseOuter(v: string): Record<string, unknown> | undefined {
  if (v === 'average') return undefined;
  const [name, lr, momentum] = v.split(':');
  if (name !== 'nesterov' || !(Number(lr) > 0) || !(Number(momentum) >= 0))
    throw new Error(`--outer ${v}: expected average or nesterov:LEARNING_RATE:MOMENTUM`);
  return { name, learningRate: Number(lr), momentum: Number(momentum) };
}

/**
 * `--outer A,B,...` (default `average`): each is a 2-replica run of the sequence; `--repeat R` repeats the whole
 * sequence (1 replica, then each 2-replica run) R times, interleaved, so that a load changing over the minutes of
 * the bench shows in every pair instead of in one side: the throughput ratio is the median of the ratios of each
 * 2-replica run to the 1-replica run of its own repetition.
 */
async function pair(cluster: TestCluster, H: number) {
  // Each 2-replica run: OUTER[@lr=X], X the inner learning rate of that run (default the spec's).
  const modes = (arg('--replica-modes') ?? 'process').split(',');
  for (const m of modes)
    if (m !== 'worker' && m !== 'process') throw new Error(`--replica-modes ${m}: expected worker or process`);
  const outers = (arg('--outer') ?? 'average').split(',').flatMap((v) => {
    const [o, lr] = v.split('@lr=');
    if (lr !== undefined && !(Number(lr) > 0)) throw new Error(`--outer ${v}: @lr= needs a positive number`);
    return modes.map((mode) => ({
      label: modes.length > 1 ? `${v} (${mode})` : v,
      outer: parseOuter(o),
      lr: lr === undefined ? undefined : Number(lr),
      inProcesses: mode === 'process',
    }));
  });
  const repeat = numArg('--repeat', 1);
  // `--spec FILE`: a user's spec (the main job's is examples/mnist-cnn.json) with a distributed block added, as a user
  // would spread their own run; otherwise a smaller mnist-cnn run.
  const file = arg('--spec');
  const own = file ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>) : null;
  const base = {
    ...(own ?? {
      model: 'mnist-cnn',
      dataset: { name: 'mnist', trainLimit: QUICK ? 3200 : 12800, testLimit: QUICK ? 500 : 2000 },
      epochs: 1,
      batchSize: 32,
      seed: 42,
      optimizer: { name: 'adam', learningRate: 0.001 },
    }),
    checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 2 },
  } as unknown as Record<string, unknown> & { epochs: number; dataset: { trainLimit: number } };
  const trainLimit = base.dataset.trainLimit;
  const rows = [];
  const ratios = new Map<string, number[]>();
  const accuracyDiffs = new Map<string, number[]>();
  for (let rep = 1; rep <= repeat; rep++) {
    let one: { samplesPerSec: number; testAccuracy: number | null } | undefined;
    for (const [replicas, { label, outer, lr, inProcesses }] of [
      [1, { label: 'plain', outer: undefined, lr: undefined, inProcesses: modes[0] === 'process' }] as const,
      ...outers.map((o) => [2, o] as const),
    ]) {
      const optimizer = base.optimizer as Record<string, unknown>;
      const spec = validateSpec({
        ...base,
        ...(lr !== undefined ? { optimizer: { ...optimizer, learningRate: lr } } : {}),
        distributed: { replicas, syncEverySteps: H, ...(outer ? { outer } : {}) },
      });
      const ws = await workers(cluster, replicas, 1, {
        DURABLE_TRAIN_REPLICA_PROCESS: inProcesses ? '1' : '0',
      });
      log(`pair ${rep}/${repeat}: ${replicas} replica(s) on ${replicas} worker(s), H=${H}, outer ${label}`);
      const r = await timed(cluster, spec, `pair-${replicas}-${Date.now()}`);
      for (const w of ws) await w.kill('SIGTERM');
      const samples = Math.floor(trainLimit / replicas) * replicas * base.epochs;
      const row = {
        repeat: rep,
        replicas,
        workers: replicas,
        outer: label,
        replicasIn: inProcesses ? 'training processes' : 'worker',
        samples,
        wallS: round(r.wallMs / 1000, 2),
        samplesPerSec: round(samples / (r.wallMs / 1000), 1),
        testAccuracy: r.result.accuracy,
        ...r.cost,
      };
      rows.push(row);
      if (replicas === 1) one = row;
      else if (one) {
        ratios.set(label, [...(ratios.get(label) ?? []), row.samplesPerSec / one.samplesPerSec]);
        accuracyDiffs.set(label, [
          ...(accuracyDiffs.get(label) ?? []),
          100 * ((row.testAccuracy ?? 0) - (one.testAccuracy ?? 0)),
        ]);
      }
    }
  }
  table(`distributed pair (${file ?? 'mnist-cnn'}, ${trainLimit} examples, H=${H}, ${repeat} repetition(s))`, rows);
  const summary = outers.map(({ label }) => ({
    outer: label,
    throughputRatios: (ratios.get(label) ?? []).map((x) => round(x, 3)),
    throughputRatio: round(median(ratios.get(label) ?? []), 3),
    accuracyDiffPoints: (accuracyDiffs.get(label) ?? []).map((x) => round(x, 2)),
  }));
  table('distributed pair summary (2 replicas on 2 workers against 1 on 1)', summary);
  return { spec: file ?? null, rows, summary };
}

async function wide(cluster: TestCluster, widths: number[]) {
  const rows = [];
  for (const replicas of widths) {
    const spec = validateSpec({
      model: 'mnist-mlp',
      dataset: { name: 'mnist', trainLimit: replicas * 64, testLimit: 200 },
      epochs: QUICK ? 1 : 2,
      batchSize: 32,
      seed: 7,
      optimizer: { name: 'adam', learningRate: 0.001 },
      checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 2 },
      // 64 examples per replica = 2 steps per epoch: one round per step, so every round is mostly orchestration.
      distributed: { replicas, syncEverySteps: 1 },
    });
    const slots = Math.max(1, Math.ceil(replicas / 2));
    // The replicas train in the workers themselves: W training processes on one 2-core host would measure their
    // start-up, not the orchestration this simulates.
    const ws = await workers(cluster, 2, slots, { DURABLE_TRAIN_REPLICA_PROCESS: '0' });
    const runId = `wide-${replicas}-${Date.now()}`;
    log(`wide: ${replicas} replicas on 2 workers x ${slots} slots`);
    const r = await timed(cluster, spec, runId);
    for (const w of ws) await w.kill('SIGTERM');
    let stored = 0;
    for (let i = 0; i < replicas; i++)
      stored += dirStats(path.join(cluster.dir, '.data', 'checkpoints', `${runId}.replica-${i}`)).bytes;
    const main = dirStats(path.join(cluster.dir, '.data', 'checkpoints', runId)).bytes;
    rows.push({
      replicas,
      slots,
      wallS: round(r.wallMs / 1000, 2),
      ...r.cost,
      storedReplicaBytes: stored,
      storedGlobalBytes: main,
    });
  }
  table('wide run simulation (mnist-mlp, 1 step per round)', rows);
  return rows;
}

async function main() {
  // One single-threaded backend per worker process (wasm by default): N processes then use N cores, which is the
  // data parallelism measured here; a multi-threaded native backend would already spread one worker over the cores.
  process.env.DURABLE_TRAIN_BACKEND = arg('--backend') ?? process.env.DURABLE_TRAIN_BACKEND ?? 'wasm';
  const backend = await initBackend();
  const only = arg('--only');
  const H = numArg('--sync-every', QUICK ? 25 : 50);
  const widths = (arg('--wide') ?? (QUICK ? '4,8' : '4,16,32')).split(',').map(Number);
  const cluster = await startCluster();
  try {
    const result: Record<string, unknown> = { bench: 'distributed', machine: machine(backend.name), quick: QUICK };
    if (!only || only === 'pair') result.pair = await pair(cluster, H);
    if (!only || only === 'wide') result.wide = await wide(cluster, widths);
    emit(result);
  } finally {
    await shutdown(cluster, []);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
