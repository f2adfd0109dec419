// Recovery with supervised training processes (bench/recovery.ts --supervised):
//   - child: the training process is SIGKILLed, the worker survives and replaces it from its spare: kill -> first new
//     step (the worker's "trains again" line), steps recomputed against one checkpoint.everySeconds interval;
//   - standby: the whole worker is SIGKILLed while a standby worker waits; the run's heartbeat timeout is short
//     (spec.heartbeatTimeoutSeconds): kill -> first new step of the standby (the server's heartbeat time);
//   - crash loop: the training process dies at the same step every time: seconds until the run fails, and its message.
// The machine is shared (other sessions' builds and tests run on the same 2 cores): figures are upper bounds.
import type { WorkflowHandle } from '@temporalio/client';
import type { RunSpec } from '../spec/types';
import { validateSpec } from '../spec/validate';
import { activityTimeline, log, median, round, sleep, summarize, tsMs, type Timeline } from './common';
import type { ReplicaResult } from '../activities/replica-types';
import { startTraining, startWorker, type TestCluster, type WorkerProcess } from './runs';
import { trainerOf, trainerPids } from '../test/helpers/trainer-process';

const readyCount = (w: WorkerProcess) => [...w.output().matchAll(/training process \d+ ready/g)].length;
const againLines = (w: WorkerProcess) =>
  [...w.output().matchAll(/trains again at step (\d+) \(lost process had reached (\d+|no step)\)/g)].map((m) => ({
    step: +m[1],
    reached: m[2] === 'no step' ? NaN : +m[2],
  }));

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > 180_000) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The pending trainChunk of the run (or with `replica`, that replica's trainReplica) as the server sees it. */
async function pendingHb(handle: WorkflowHandle, replica?: number) {
  const d = await handle.describe();
  const parse = (data: Uint8Array | null | undefined) =>
    data?.length
      ? (JSON.parse(Buffer.from(data).toString('utf8')) as {
          step: number;
          samplesPerSec: number;
          replica?: number;
          round?: number;
        })
      : null;
  const a = d.raw.pendingActivities?.find((p) =>
    replica === undefined
      ? p.activityType?.name === 'trainChunk'
      : p.activityType?.name === 'trainReplica' && parse(p.heartbeatDetails?.payloads?.[0]?.data)?.replica === replica,
  );
  const data = a?.heartbeatDetails?.payloads?.[0]?.data;
  const ms = (t: Parameters<typeof tsMs>[0]) => (t ? tsMs(t) : 0);
  return {
    startedMs: ms(a?.lastStartedTime),
    attempt: a?.attempt ?? 0,
    status: d.status.name,
    identity: a?.lastWorkerIdentity ?? '',
    hb: parse(data),
    raw: data ? Buffer.from(data).toString() : '',
    hbMs: ms(a?.lastHeartbeatTime),
  };
}

export function supervisedSpec(storage: string, quick: boolean, heartbeatTimeoutSeconds = 3): RunSpec {
  return validateSpec({
    model: 'mnist-cnn',
    dataset: { name: 'mnist', trainLimit: quick ? 3200 : 12800, testLimit: 200 },
    epochs: 4,
    batchSize: 32,
    chunkSteps: 200,
    seed: 42,
    optimizer: { name: 'adam', learningRate: 0.001 },
    checkpoint: { storage, everySeconds: 2, keepLatest: 3 },
    heartbeatTimeoutSeconds,
  });
}

/** SIGKILLs the training process `kills` times; the worker survives. */
export async function childKills(cluster: TestCluster, spec: RunSpec, kills: number, workers: WorkerProcess[]) {
  const w = await startWorker(cluster);
  workers.push(w);
  let runNo = 0;
  let handle = await startTraining(cluster, spec, `sup-child-${runNo}`);
  const records: Array<Record<string, number>> = [];
  for (let i = 0; i < kills; i++) {
    // Train a while in a process, with a spare ready (as a running worker has), then kill it at a random moment.
    await until('training again', () => againLines(w).length >= i);
    await until('a spare ready', () => readyCount(w) >= trainerPids(w).length);
    let s = await pendingHb(handle);
    if (s.status !== 'RUNNING') {
      handle = await startTraining(cluster, spec, `sup-child-${++runNo}`);
      i--;
      continue;
    }
    await until('a training process on the run', async () => Number.isFinite(trainerOf(w, handle.workflowId)));
    await sleep(1500 + Math.random() * 2000);
    s = await pendingHb(handle);
    const busy = trainerOf(w, handle.workflowId);
    const msPerStep = s.hb && s.hb.samplesPerSec > 0 ? (spec.batchSize * 1000) / s.hb.samplesPerSec : NaN;
    const tKill = Date.now();
    process.kill(busy, 'SIGKILL');
    const line = await until('the first new step', () => againLines(w)[i]);
    const firstStepS = (Date.now() - tKill) / 1000;
    const restored = line.step - 1;
    const intervalSteps = Math.round(((spec.checkpoint.everySeconds ?? 0) * 1000) / msPerStep);
    const rec = {
      firstStepS: round(firstStepS, 2),
      reached: line.reached,
      restored,
      recomputed: line.reached - restored,
      intervalSteps,
      msPerStep: round(msPerStep, 1),
    };
    log(`recovery --supervised: child kill ${i + 1}: ${JSON.stringify(rec)}`);
    records.push(rec);
  }
  await handle.terminate('benchmark done').catch(() => undefined);
  await w.kill('SIGTERM');
  return {
    kills: records.length,
    firstStepS: summarize(
      records.map((r) => r.firstStepS),
      2,
    ),
    recomputed: summarize(
      records.map((r) => r.recomputed),
      1,
    ),
    intervalSteps: median(records.map((r) => r.intervalSteps)),
    recomputedWithinInterval: records.every((r) => r.recomputed <= r.intervalSteps + 1),
    records,
  };
}

/** Kills of a whole worker, a standby taking over: kill -> the retry starts, kill -> its first step (medians). */
function lostWorkerSummary(spec: RunSpec, records: Array<Record<string, number>>) {
  return {
    kills: records.length,
    heartbeatTimeoutSeconds: spec.heartbeatTimeoutSeconds,
    firstStepS: summarize(
      records.map((r) => r.firstStepS),
      2,
    ),
    retryStartedS: summarize(
      records.map((r) => r.retryStartedS),
      2,
    ),
    records,
  };
}

/** SIGKILLs the whole worker `kills` times while a standby worker waits. */
export async function standbyKills(cluster: TestCluster, spec: RunSpec, kills: number, workers: WorkerProcess[]) {
  let active = await startWorker(cluster);
  workers.push(active);
  const handle = await startTraining(cluster, spec, 'sup-standby');
  const records: Array<Record<string, number>> = [];
  for (let i = 0; i < kills; i++) {
    const standby = await startWorker(cluster);
    workers.push(standby);
    await until('standby ready', () => readyCount(standby) >= 1);
    // Each kill hits a chunk's first attempt (a chunk killed again waits out a doubling retry backoff: a crash loop,
    // measured below), as one lost host does.
    await until('the active worker trains a first attempt', async () => {
      const s = await pendingHb(handle);
      return s.identity.startsWith(`${active.proc.pid}@`) && s.attempt === 1 && s.hb;
    });
    await sleep(1000 + Math.random() * 2000);
    const before = await pendingHb(handle);
    if (before.status !== 'RUNNING') break;
    const tKill = Date.now();
    await active.kill('SIGKILL');
    const first = await until('the standby trains', async () => {
      const s = await pendingHb(handle);
      // A step of the standby (the heartbeat it sends on restoring, before any step, has samplesPerSec 0).
      const stepped = (s.hb?.samplesPerSec ?? 0) > 0;
      return s.identity.startsWith(`${standby.proc.pid}@`) && stepped && s.raw !== before.raw && s.hbMs > tKill
        ? s
        : null;
    });
    // Split: the retried attempt starts on the standby (the heartbeat timeout, then the retry backoff), then it
    // restores and takes its first step.
    const rec = {
      retryStartedS: round((first.startedMs - tKill) / 1000, 2),
      firstStepS: round((first.hbMs - tKill) / 1000, 2),
      seenS: round((Date.now() - tKill) / 1000, 2),
    };
    log(`recovery --supervised: worker kill ${i + 1}: ${JSON.stringify(rec)}`);
    records.push(rec);
    active = standby;
  }
  await handle.terminate('benchmark done').catch(() => undefined);
  await active.kill('SIGTERM');
  return lostWorkerSummary(spec, records);
}

/**
 * A distributed run's lost host: 2 replicas on 2 workers and a standby; the worker training replica 1 is SIGKILLed
 * mid-round, `kills` times (a new standby each time): kill -> the retried replica's first step on another worker (the
 * server's heartbeat time), at the run's heartbeat timeout (`start` records 3 s since replicas train in training
 * processes).
 */
export async function replicaWorkerKills(cluster: TestCluster, base: RunSpec, kills: number, workers: WorkerProcess[]) {
  const shardSteps = Math.floor((base.dataset as { trainLimit: number }).trainLimit / 2 / base.batchSize);
  const spec = validateSpec({ ...base, distributed: { replicas: 2, syncEverySteps: Math.min(100, shardSteps) } });
  const live = await Promise.all([startWorker(cluster), startWorker(cluster), startWorker(cluster)]);
  workers.push(...live);
  let runNo = 0;
  let handle = await startTraining(cluster, spec, `sup-replica-worker-${runNo}`);
  const records: Array<Record<string, number>> = [];
  for (let i = 0; i < kills; i++) {
    const s = await until('replica 1 training a first attempt', async () => {
      const h = await pendingHb(handle, 1);
      return h.status !== 'RUNNING' || (h.attempt === 1 && (h.hb?.samplesPerSec ?? 0) > 0) ? h : null;
    });
    if (s.status !== 'RUNNING') {
      handle = await startTraining(cluster, spec, `sup-replica-worker-${++runNo}`);
      i--;
      continue;
    }
    await sleep(500 + Math.random() * 1000);
    const before = await pendingHb(handle, 1);
    const victim = live.find((w) => before.identity.startsWith(`${w.proc.pid}@`));
    if (!victim || before.status !== 'RUNNING' || before.attempt !== 1) {
      i--;
      continue;
    }
    const tKill = Date.now();
    await victim.kill('SIGKILL');
    live.splice(live.indexOf(victim), 1);
    const first = await until('replica 1 trains elsewhere', async () => {
      const h = await pendingHb(handle, 1);
      const stepped = (h.hb?.samplesPerSec ?? 0) > 0 && h.attempt > 1 && h.hbMs > tKill;
      return stepped || h.status !== 'RUNNING' ? h : null;
    });
    if (first.status === 'RUNNING') {
      const rec = {
        retryStartedS: round((first.startedMs - tKill) / 1000, 2),
        firstStepS: round((first.hbMs - tKill) / 1000, 2),
      };
      log(`recovery --supervised: replica worker kill ${i + 1}: ${JSON.stringify(rec)}`);
      records.push(rec);
    }
    const standby = await startWorker(cluster);
    workers.push(standby);
    live.push(standby);
  }
  await handle.terminate('benchmark done').catch(() => undefined);
  for (const w of live) await w.kill('SIGTERM');
  return lostWorkerSummary(spec, records);
}

/** A training process that dies at step 20 every time: how long until the run fails, and what it says. */
export async function crashLoop(cluster: TestCluster, spec: RunSpec, workers: WorkerProcess[]) {
  const w = await startWorker(cluster, { DURABLE_TRAIN_FAILPOINT: 'kill-trainer:sup-crash-loop:20' });
  workers.push(w);
  const t0 = Date.now();
  const handle = await startTraining(cluster, spec, 'sup-crash-loop');
  const message = await handle.result().then(
    () => 'completed (no crash loop?)',
    (err: unknown) => String((err as { cause?: { cause?: Error } }).cause?.cause?.message ?? err),
  );
  await w.kill('SIGTERM');
  return { secondsToFailure: round((Date.now() - t0) / 1000, 1), message };
}

/** A replica of the run, as the server sees it: its round and whether it has trained a step in this attempt. */
async function replicaHb(handle: WorkflowHandle, replica: number) {
  const p = await pendingHb(handle, replica);
  return { status: p.status, round: p.hb?.round ?? -1, stepped: (p.hb?.samplesPerSec ?? 0) > 0 };
}

/**
 * What a replica's death cost its round, from the run's history: for each round (replicas grouped by the step they
 * started from), how long after replica 0's close replica 1 closed (the time the other replica and the sync waited on
 * it); for a round with a kill at `killAtMs`, also the part of it that was work redone (the kill less the start of
 * replica 1's activity: restore and the steps it had trained).
 */
function roundWaits(t: Timeline, killAtMs: number[]) {
  const byFrom = new Map<number, Map<number, { startedMs: number; closedMs: number }>>();
  for (const a of t.activities) {
    if (a.type !== 'trainReplica' || a.outcome !== 'completed' || a.startedMs === null || a.closedMs === null) continue;
    const r = a.result as ReplicaResult;
    const m = byFrom.get(r.fromStep) ?? new Map<number, { startedMs: number; closedMs: number }>();
    m.set(r.replica, { startedMs: a.startedMs, closedMs: a.closedMs });
    byFrom.set(r.fromStep, m);
  }
  const rounds = [];
  for (const [fromStep, m] of byFrom) {
    const r0 = m.get(0);
    const r1 = m.get(1);
    if (!r0 || !r1) continue;
    const kill = killAtMs.find((k) => k >= r1.startedMs && k <= r1.closedMs);
    rounds.push({
      fromStep,
      killed: kill !== undefined,
      waitedMs: Math.round(r1.closedMs - r0.closedMs),
      redoneMs: kill === undefined ? null : Math.round(kill - r1.startedMs),
    });
  }
  return rounds;
}

/**
 * SIGKILLs the training process of replica 1 of a 2-replica run (a worker with two slots, a spare holding the round's
 * checkpoint), once per round, `kills` times: kill -> the replica trains again (the worker's line), and whether the
 * restart restored from memory, in how many ms.
 */
export async function replicaKills(cluster: TestCluster, base: RunSpec, kills: number, workers: WorkerProcess[]) {
  const shardSteps = Math.floor((base.dataset as { trainLimit: number }).trainLimit / 2 / base.batchSize);
  const spec = validateSpec({ ...base, distributed: { replicas: 2, syncEverySteps: Math.min(100, shardSteps) } });
  const w = await startWorker(cluster, { DURABLE_TRAIN_SLOTS: '2' });
  workers.push(w);
  let runNo = 0;
  let handle = await startTraining(cluster, spec, `sup-replica-${runNo}`);
  const records: Array<Record<string, number | boolean>> = [];
  const handles = [handle];
  const killAtMs: number[] = [];
  let lastRound = -1;
  for (let i = 0; i < kills; i++) {
    const s = await until('replica 1 training in a new round', async () => {
      const h = await replicaHb(handle, 1);
      return h.status !== 'RUNNING' || (h.stepped && h.round > lastRound) ? h : null;
    });
    if (s.status !== 'RUNNING') {
      handle = await startTraining(cluster, spec, `sup-replica-${++runNo}`);
      handles.push(handle);
      lastRound = -1;
      i--;
      continue;
    }
    await sleep(300 + Math.random() * 1000);
    const runId = handle.workflowId;
    const runs = [
      ...w.output().matchAll(new RegExp(`training process (\\d+) runs the replica 1 of run ${runId}\\b`, 'g')),
    ];
    const pid = Number(runs[runs.length - 1]?.[1]);
    const again = new RegExp(`the replica 1 of run ${runId} trains again (\\d+) ms`, 'g');
    const before = [...w.output().matchAll(again)].length;
    const memory = new RegExp(
      `replica 1 of run ${runId} restores the round's checkpoint \\S+ from memory \\(\\d+ blobs checked against its manifest, (\\d+) ms\\)`,
      'g',
    );
    const memBefore = [...w.output().matchAll(memory)].length;
    process.kill(pid, 'SIGKILL');
    killAtMs.push(Date.now());
    const ms = await until('the replica trains again', () => [...w.output().matchAll(again)][before]?.[1]);
    const mem = [...w.output().matchAll(memory)].slice(memBefore);
    const rec = {
      trainsAgainMs: Number(ms),
      fromMemory: mem.length > 0,
      restoreMs: mem.length ? Number(mem[0][1]) : NaN,
    };
    log(`recovery --supervised: replica kill ${i + 1} (round ${s.round}): ${JSON.stringify(rec)}`);
    records.push(rec);
    lastRound = s.round;
  }
  // The last round with a kill runs to its close before the run goes, so its wait is in the history.
  const lastKill = killAtMs.slice(-1);
  await until(
    'the last killed round closed',
    async () =>
      roundWaits(await activityTimeline(handle), lastKill).some((r) => r.killed) ||
      (await replicaHb(handle, 1)).status !== 'RUNNING',
  );
  await handle.terminate('benchmark done').catch(() => undefined);
  await w.kill('SIGTERM');
  const rounds = [];
  for (const h of handles) rounds.push(...roundWaits(await activityTimeline(h), killAtMs));
  const killed = rounds.filter((r) => r.killed);
  return {
    // In a round with a kill, the other replica (and the sync) waited `roundWait` on replica 1, of which `redone` was
    // the killed attempt's own time (its restore and the steps it trained again); `calmRoundWait`: rounds without one.
    roundWaitS: summarize(
      killed.map((r) => r.waitedMs / 1000),
      2,
    ),
    redoneS: summarize(
      killed.map((r) => (r.redoneMs ?? 0) / 1000),
      2,
    ),
    calmRoundWaitS: summarize(
      rounds.filter((r) => !r.killed).map((r) => r.waitedMs / 1000),
      2,
    ),
    rounds,
    kills: records.length,
    syncEverySteps: spec.distributed!.syncEverySteps,
    trainsAgainS: summarize(
      records.map((r) => Number(r.trainsAgainMs) / 1000),
      2,
    ),
    fromMemory: records.filter((r) => r.fromMemory).length,
    restoreMs: summarize(
      records.filter((r) => r.fromMemory).map((r) => Number(r.restoreMs)),
      0,
    ),
    records,
  };
}
