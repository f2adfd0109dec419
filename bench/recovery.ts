// Recovery: SIGKILL the worker process at random points of a durable run (real dev server, real worker processes,
// a replacement worker started right after the kill, as a supervisor would) and measure
//   - seconds from the kill to the first step of the retried attempt (the server's time of its first heartbeat),
//     split into: the server notices (heartbeat timeout), the retry starts (after the retry backoff), first step;
//   - steps recomputed: the step the killed attempt had reached minus the step the retry restored,
// against the heartbeat timeout (10 s, workflows/training.ts) and the checkpoint interval.
// 'independent' kills hit a fresh chunk (attempt 1) at a uniformly random time within it; 'repeated' kills hit the
// same chunk again and again (a crash loop), which shows the retry backoff growing.
//
//   npm run build && node dist/bench/recovery.js [--quick] [--kills 5] [--repeated 3]
//   node dist/bench/recovery.js --supervised [--heartbeat 3] [--child-kills N] [--worker-kills N] [--replica-kills N]
//     [--replicas-only] (a replica's training process SIGKILLed, bench/recovery-supervised.ts replicaKills)
//     [--replica-workers-only] (the worker of a distributed run's replica SIGKILLed, a standby waiting)
//
// Goal: kill -> first new step <= heartbeat timeout + 3 s; recomputed steps <= one checkpoint interval.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { snapshotOf } from '../activities/commit';
import type { ChunkHeartbeat } from '../activities/types';
import { stepFromId } from '../checkpoint/codec';
import type { RunSpec } from '../spec/types';
import { initBackend } from '../training/backend';
import { ACTIVITY_RETRY, HEARTBEAT_TIMEOUT_S } from '../workflows/policy';
import {
  QUICK,
  decodeFirst,
  emit,
  log,
  machine,
  median,
  mnistSpec,
  numArg,
  round,
  sleep,
  summarize,
  table,
  tsMs,
} from './common';
import {
  childKills,
  crashLoop,
  replicaKills,
  replicaWorkerKills,
  standbyKills,
  supervisedSpec,
} from './recovery-supervised';
import { shutdown, startCluster, startTraining, startWorker, type TestCluster, type WorkerProcess } from './runs';

const GOAL_SLACK_S = 3;

interface Config {
  name: string;
  spec: (storage: string) => RunSpec;
  kills: number;
  repeated: number;
}

interface Pending {
  activityId: string;
  type: string;
  state: number;
  attempt: number;
  scheduledMs: number;
  lastStartedMs: number;
  lastHeartbeatMs: number;
  identity: string;
  hb: ChunkHeartbeat | undefined;
  lastFailure: string | undefined;
}

async function pendingOf(handle: WorkflowHandle): Promise<{ status: string; acts: Pending[] }> {
  const d = await handle.describe();
  const acts = (d.raw.pendingActivities ?? []).map((a): Pending => ({
    activityId: a.activityId ?? '',
    type: a.activityType?.name ?? '?',
    state: Number(a.state ?? 0),
    attempt: a.attempt ?? 0,
    scheduledMs: tsMs(a.scheduledTime as Parameters<typeof tsMs>[0]),
    lastStartedMs: tsMs(a.lastStartedTime as Parameters<typeof tsMs>[0]),
    lastHeartbeatMs: tsMs(a.lastHeartbeatTime as Parameters<typeof tsMs>[0]),
    identity: a.lastWorkerIdentity ?? '',
    hb: decodeFirst(a.heartbeatDetails) as ChunkHeartbeat | undefined,
    lastFailure: a.lastFailure?.message ?? undefined,
  }));
  return { status: d.status.name, acts };
}

const STARTED = 2; // PENDING_ACTIVITY_STATE_STARTED

/** The newest committed checkpoint on disk: its step and when its state was taken (manifest createdAt). */
function newestCommitted(dir: string, runId: string): { step: number; createdMs: number } {
  try {
    const mdir = path.join(dir, runId, 'manifests');
    const ids = fs
      .readdirSync(mdir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5))
      .sort((a, b) => stepFromId(b) - stepFromId(a));
    if (!ids.length) return { step: -1, createdMs: NaN };
    const m = JSON.parse(fs.readFileSync(path.join(mdir, `${ids[0]}.json`), 'utf8')) as { createdAt: string };
    return { step: stepFromId(ids[0]), createdMs: Date.parse(m.createdAt) };
  } catch {
    return { step: -1, createdMs: NaN };
  }
}

interface KillRecord {
  config: string;
  mode: 'independent' | 'repeated';
  killedAttempt: number;
  phase: string;
  secondsIntoAttempt: number;
  msPerStep: number;
  hbStepAtKill: number;
  estStepAtKill: number;
  committedStepAtKill: number;
  restoredStep: number;
  recomputedSteps: number;
  /** Kill time minus the time the restored checkpoint's state was taken: the work that was lost. */
  lostSeconds: number;
  intervalSteps: number;
  intervalSeconds: number;
  detectS: number;
  retryStartS: number;
  firstStepS: number;
  lastFailure: string | undefined;
  newWorkerReadyS: number;
  /** How old the server's last heartbeat of the killed attempt was at the kill. */
  heartbeatAgeS: number;
}

/** Per config: the largest heartbeat age seen on a live worker's attempt (polled every ~100 ms). */
const healthByConfig: Record<string, { maxHeartbeatAgeS: number }> = {};
/** Per config: restore path pieces timed in a fresh process (see restoreProbe). */
const probes: Record<string, Record<string, unknown>> = {};

async function runConfig(cluster: TestCluster, cfg: Config, workers: WorkerProcess[]): Promise<KillRecord[]> {
  const health = (healthByConfig[cfg.name] = { maxHeartbeatAgeS: 0 });
  const dir = path.join(cluster.dir, `ckpt-${cfg.name}`);
  const spec = cfg.spec(`file://${dir}`);
  let runNo = 0;
  let runId = `rec-${cfg.name}-${runNo}`;
  let handle: WorkflowHandle = await startTraining(cluster, spec, runId);
  let worker = await startWorker(cluster);
  workers.push(worker);
  const records: KillRecord[] = [];
  let lastKilledActivity = '';
  const msPerStepFallback = 10;
  // Wall time per step (steps between two heartbeats of one attempt over the time between them): includes what
  // samplesPerSec leaves out (commits, heartbeats, yielding), so the step reached at a kill is estimated better.
  let lastObs: { key: string; step: number; ms: number } | null = null;
  let wallMsPerStep = NaN;
  const observe = (p: { acts: Pending[] } | null) => {
    const c = p?.acts.find((a) => a.type === 'trainChunk' && a.state === STARTED && a.hb);
    if (!c || !(c.lastHeartbeatMs > c.lastStartedMs)) return;
    // How stale the server's view of a healthy attempt gets: the margin the heartbeat timeout has to cover.
    if (
      c.identity.startsWith(`${worker.proc.pid}@`) &&
      worker.proc.exitCode === null &&
      worker.proc.signalCode === null
    )
      health.maxHeartbeatAgeS = Math.max(health.maxHeartbeatAgeS, (Date.now() - c.lastHeartbeatMs) / 1000);
    const key = `${c.activityId}#${c.attempt}`;
    if (lastObs && lastObs.key === key && c.hb!.step > lastObs.step && c.lastHeartbeatMs - lastObs.ms >= 800) {
      wallMsPerStep = (c.lastHeartbeatMs - lastObs.ms) / (c.hb!.step - lastObs.step);
      lastObs = { key, step: c.hb!.step, ms: c.lastHeartbeatMs };
    } else if (!lastObs || lastObs.key !== key || c.hb!.step < lastObs.step) {
      lastObs = { key, step: c.hb!.step, ms: c.lastHeartbeatMs };
    }
  };
  const poll = async () => {
    const p = await pendingOf(handle);
    observe(p);
    return p;
  };

  /** The chunk running (and heartbeating) on `worker`; starts a new run when the current one has finished. */
  const runningChunk = async (fresh: boolean): Promise<Pending> => {
    for (;;) {
      const p = await poll();
      if (p.status !== 'RUNNING') {
        runNo += 1;
        runId = `rec-${cfg.name}-${runNo}`;
        log(`recovery: ${cfg.name}: run finished, starting ${runId}`);
        handle = await startTraining(cluster, spec, runId);
        continue;
      }
      const c = p.acts.find(
        (a) =>
          a.type === 'trainChunk' &&
          a.state === STARTED &&
          a.identity.startsWith(`${worker.proc.pid}@`) &&
          a.lastHeartbeatMs > a.lastStartedMs &&
          (!fresh || (a.attempt === 1 && a.activityId !== lastKilledActivity)),
      );
      if (c) return c;
      await sleep(100);
    }
  };

  const killNow = async (mode: KillRecord['mode'], target: Pending, delayMs: number): Promise<KillRecord> => {
    await sleep(delayMs);
    const before = await poll();
    const chunk = before.acts.find((a) => a.type === 'trainChunk' && a.state === STARTED);
    const committed = newestCommitted(dir, runId);
    const committedStepAtKill = committed.step;
    const tKill = Date.now();
    await worker.kill('SIGKILL');
    const phase =
      before.acts.map((a) => `${a.type}#${a.attempt}${a.state === STARTED ? '' : '(scheduled)'}`).join(',') ||
      'between activities';
    const hb = chunk?.hb;
    const msPerStep = Number.isFinite(wallMsPerStep)
      ? wallMsPerStep
      : hb && hb.samplesPerSec > 0
        ? (spec.batchSize * 1000) / hb.samplesPerSec
        : msPerStepFallback;
    const hbStepAtKill = hb?.step ?? NaN;
    const estStepAtKill =
      chunk && hb ? Math.min(hb.totalSteps, hb.step + Math.floor((tKill - chunk.lastHeartbeatMs) / msPerStep)) : NaN;
    const killedAttempt = chunk?.attempt ?? 0;
    lastKilledActivity = target.activityId;

    // The replacement worker, started at once.
    const w = startWorker(cluster);
    let newWorkerReadyS = NaN;
    const ready = w.then((x) => {
      newWorkerReadyS = (Date.now() - tKill) / 1000;
      return x;
    });
    let detectMs = NaN;
    let first: Pending | undefined;
    for (;;) {
      const p = await pendingOf(handle).catch(() => null);
      observe(p);
      const c = p?.acts.find((a) => a.type === 'trainChunk');
      if (c && Number.isNaN(detectMs) && (c.attempt > killedAttempt || c.activityId !== target.activityId))
        detectMs = Date.now() - tKill;
      if (c && c.lastHeartbeatMs > tKill && c.lastStartedMs > tKill && c.hb) {
        first = c;
        break;
      }
      if (p && p.status !== 'RUNNING') break;
      await sleep(100);
    }
    worker = await ready;
    workers.push(worker);
    if (!first) throw new Error(`${cfg.name}: the run ended before a retried step was seen`);
    const restoredStep = first.hb!.step - 1;
    const everySteps = spec.checkpoint.everySeconds
      ? Math.round((spec.checkpoint.everySeconds * 1000) / msPerStep)
      : Infinity;
    const intervalSteps = Math.min(spec.chunkSteps, everySteps);
    const rec: KillRecord = {
      config: cfg.name,
      mode,
      killedAttempt,
      phase,
      secondsIntoAttempt: chunk ? round((tKill - chunk.lastStartedMs) / 1000, 2) : NaN,
      msPerStep: round(msPerStep, 1),
      hbStepAtKill,
      estStepAtKill,
      committedStepAtKill,
      restoredStep,
      recomputedSteps: Math.max(0, estStepAtKill - restoredStep),
      lostSeconds: restoredStep === committedStepAtKill ? round((tKill - committed.createdMs) / 1000, 2) : NaN,
      intervalSteps,
      intervalSeconds: round((intervalSteps * msPerStep) / 1000, 2),
      detectS: round(detectMs / 1000, 2),
      retryStartS: round((first.lastStartedMs - tKill) / 1000, 2),
      firstStepS: round((first.lastHeartbeatMs - tKill) / 1000, 2),
      lastFailure: first.lastFailure,
      newWorkerReadyS: round(newWorkerReadyS, 2),
      heartbeatAgeS: chunk ? round((tKill - chunk.lastHeartbeatMs) / 1000, 2) : NaN,
    };
    log(
      `recovery: ${cfg.name} ${mode} kill (${phase}, ${rec.secondsIntoAttempt} s in, hb step ${hbStepAtKill} ${rec.heartbeatAgeS} s old, ` +
        `${rec.msPerStep} ms/step, step ~${estStepAtKill}): ` +
        `first new step after ${rec.firstStepS} s (retry started ${rec.retryStartS} s), restored step ${restoredStep} ` +
        `(committed on disk ${committedStepAtKill}), recomputed ~${rec.recomputedSteps} steps, lost ${rec.lostSeconds} s`,
    );
    return rec;
  };

  const chunkSeconds = (p: Pending) => {
    const sps = p.hb?.samplesPerSec ?? 0;
    return sps > 0 ? (spec.chunkSteps * spec.batchSize) / sps : 5;
  };
  for (let i = 0; i < cfg.kills; i++) {
    const c = await runningChunk(true);
    // A uniformly random point of the chunk's remaining training time (measured from when it was seen running).
    records.push(await killNow('independent', c, Math.random() * chunkSeconds(c) * 1000));
  }
  for (let i = 0; i < cfg.repeated; i++) {
    const c = await runningChunk(i === 0);
    records.push(await killNow('repeated', c, 500 + Math.random() * 2000));
  }
  await handle.terminate('benchmark done').catch(() => undefined);
  // The worker is idle now (run terminated): time a fresh process's restore path on this run's newest checkpoint.
  await sleep(2000);
  probes[cfg.name] = await restoreProbe(spec, runId, dir);
  log(`recovery: ${cfg.name}: fresh-process restore path: ${JSON.stringify(probes[cfg.name])}`);
  // The next config starts its own worker: this one must not pick up that config's chunks.
  await worker.kill('SIGTERM');
  return records;
}

// ---------------------------------------------------------------------------------------------------------
// What the retried attempt spends between its start and its first step, on a fresh worker process: a child
// process times each piece of the same path (tfjs + backend, dataset, find and verify the newest checkpoint,
// load + verify it, Trainer.fromSnapshot, one step).
// ---------------------------------------------------------------------------------------------------------

async function restoreProbeChild(specFile: string, runId: string): Promise<void> {
  const t0 = performance.now();
  const ms: Record<string, number> = {};
  let t = t0;
  const lap = (k: string) => {
    const n = performance.now();
    ms[k] = round(n - t, 1);
    t = n;
  };
  const spec = JSON.parse(fs.readFileSync(specFile, 'utf8')) as RunSpec;
  const { Trainer } = await import('../training');
  const { loadDataset } = await import('../training/datasets');
  const { CheckpointManager, openStore } = await import('../checkpoint');
  lap('requireModules');
  await initBackend();
  lap('initBackend');
  loadDataset(spec.dataset);
  lap('loadDataset');
  const manager = new CheckpointManager(openStore(spec.checkpoint.storage), runId);
  const all = await manager.list();
  const newest = all.sort((a, b) => b.step - a.step)[0];
  const v = await manager.verify(newest.id);
  if (!v.ok) throw new Error(`${newest.id} does not verify`);
  lap('listAndVerifyNewest');
  const { manifest, blobs } = await manager.load(newest.id);
  lap('loadAndVerify');
  const trainer = await Trainer.fromSnapshot(spec, snapshotOf(manifest, blobs));
  lap('fromSnapshot');
  await trainer.train({ maxSteps: 1 });
  lap('firstStep');
  await trainer.train({ maxSteps: 1 });
  lap('secondStep');
  ms.total = round(performance.now() - t0, 1);
  process.stdout.write(JSON.stringify({ checkpoint: newest.id, ms }) + '\n');
}

async function restoreProbe(spec: RunSpec, runId: string, dir: string): Promise<Record<string, unknown>> {
  const specFile = path.join(dir, `probe-spec-${runId}.json`);
  fs.writeFileSync(specFile, JSON.stringify(spec));
  const r = spawnSync(process.execPath, [__filename, '--child-restore-probe', specFile, runId], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) return { error: (r.stderr || '').slice(-1000) };
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

async function main(): Promise<void> {
  const probeArgs = process.argv.indexOf('--child-restore-probe');
  if (probeArgs >= 0) return restoreProbeChild(process.argv[probeArgs + 1], process.argv[probeArgs + 2]);
  const backend = await initBackend();
  const m0 = machine(backend.name);
  if (process.argv.includes('--supervised')) return supervised(m0);
  const kills = numArg('--kills', QUICK ? 1 : 5);
  const repeated = numArg('--repeated', QUICK ? 0 : 3);
  const configs: Config[] = QUICK
    ? [
        {
          name: 'mlp-quick',
          spec: (storage) =>
            mnistSpec({
              model: 'mnist-mlp',
              trainLimit: 6400,
              testLimit: 200,
              epochs: 40,
              chunkSteps: 200,
              storage,
              everySeconds: 0.5,
              keepLatest: 3,
            }),
          kills,
          repeated,
        },
      ]
    : [
        {
          // examples/mnist-cnn.json (what `npm start` runs), with more epochs so there is room for every kill.
          name: 'cnn-example',
          spec: (storage) =>
            mnistSpec({
              model: 'mnist-cnn',
              trainLimit: 60000,
              testLimit: 10000,
              epochs: 5,
              chunkSteps: 200,
              storage,
              everySeconds: 30,
              keepLatest: 3,
            }),
          kills,
          repeated,
        },
        {
          name: 'mlp-every5s',
          spec: (storage) =>
            mnistSpec({
              model: 'mnist-mlp',
              trainLimit: 60000,
              testLimit: 10000,
              epochs: 40,
              chunkSteps: 1000,
              storage,
              everySeconds: 5,
              keepLatest: 3,
            }),
          kills,
          repeated: 0,
        },
      ];
  const workers: WorkerProcess[] = [];
  let cluster: TestCluster | null = null;
  const records: KillRecord[] = [];
  try {
    cluster = await startCluster();
    for (const cfg of configs) records.push(...(await runConfig(cluster, cfg, workers)));
  } finally {
    await shutdown(cluster, workers);
  }
  const limit = HEARTBEAT_TIMEOUT_S + GOAL_SLACK_S;
  const summary = configs.flatMap((cfg) =>
    (['independent', 'repeated'] as const)
      .map((mode) => {
        const rs = records.filter((r) => r.config === cfg.name && r.mode === mode);
        if (!rs.length) return null;
        const firstStep = summarize(
          rs.map((r) => r.firstStepS),
          2,
        );
        return {
          config: cfg.name,
          mode,
          kills: rs.length,
          firstStepS: firstStep,
          detectS: summarize(
            rs.map((r) => r.detectS),
            2,
          ),
          retryStartS: summarize(
            rs.map((r) => r.retryStartS),
            2,
          ),
          recomputedSteps: summarize(
            rs.map((r) => r.recomputedSteps),
            1,
          ),
          lostSeconds: summarize(
            rs.map((r) => r.lostSeconds),
            2,
          ),
          intervalSteps: median(rs.map((r) => r.intervalSteps)),
          intervalSeconds: median(rs.map((r) => r.intervalSeconds)),
          maxHealthyHeartbeatAgeS: round(healthByConfig[cfg.name]?.maxHeartbeatAgeS ?? NaN, 2),
          goalFirstStep: { limitS: limit, maxS: firstStep.max, pass: firstStep.max <= limit },
          // Lost work within one interval (plus one commit's duration and a step: the next interval starts after a commit).
          goalRecompute: {
            pass: rs.every((r) => r.recomputedSteps <= r.intervalSteps || r.lostSeconds <= r.intervalSeconds + 1),
          },
        };
      })
      .filter((x) => x !== null),
  );
  table(
    'recovery: per kill',
    records.map((r) => ({
      config: r.config,
      mode: r.mode,
      attempt: r.killedAttempt,
      's in': r.secondsIntoAttempt,
      'kill->detect s': r.detectS,
      'kill->retry start s': r.retryStartS,
      'kill->first step s': r.firstStepS,
      'step@kill~': r.estStepAtKill,
      restored: r.restoredStep,
      'committed@kill': r.committedStepAtKill,
      recomputed: r.recomputedSteps,
      'interval steps': r.intervalSteps,
      'lost s': r.lostSeconds,
      'interval s': r.intervalSeconds,
    })),
  );
  table(
    `recovery: summary (goal: first step <= ${limit} s, recomputed <= interval)`,
    summary.map((s) => ({
      config: s.config,
      mode: s.mode,
      kills: s.kills,
      'first step s median': s.firstStepS.median,
      max: s.firstStepS.max,
      'recomputed median': s.recomputedSteps.median,
      'recomputed max': s.recomputedSteps.max,
      'interval steps': s.intervalSteps,
      'lost s max': s.lostSeconds.max,
      'interval s': s.intervalSeconds,
      'goal time': s.goalFirstStep.pass ? 'pass' : 'miss',
      'goal recompute': s.goalRecompute.pass ? 'pass' : 'miss',
    })),
  );
  emit({
    bench: 'recovery',
    quick: QUICK,
    date: new Date().toISOString(),
    machine: m0,
    heartbeatTimeoutS: HEARTBEAT_TIMEOUT_S,
    retryPolicy: {
      initialInterval: ACTIVITY_RETRY.initialInterval,
      backoffCoefficient: ACTIVITY_RETRY.backoffCoefficient,
      maximumInterval: ACTIVITY_RETRY.maximumInterval,
    },
    heartbeatThrottle: '1s (cli/worker.ts)',
    configs: configs.map((c) => ({ name: c.name, spec: c.spec('file://...') })),
    summary,
    freshProcessRestoreMs: probes,
    kills: records,
  });
}

/** Supervised training processes: child kills, whole-worker kills with a standby, a crash loop. */
async function supervised(m0: ReturnType<typeof machine>): Promise<void> {
  const workers: WorkerProcess[] = [];
  let cluster: TestCluster | null = null;
  try {
    cluster = await startCluster();
    const spec = supervisedSpec(
      `file://${path.join(cluster.dir, 'ckpt-supervised')}`,
      QUICK,
      numArg('--heartbeat', HEARTBEAT_TIMEOUT_S),
    );
    const replicaKillCount = numArg('--replica-kills', QUICK ? 3 : 10);
    // One part alone: a replica's worker (--replica-workers-only) or a replica's training process (--replicas-only).
    const only = (bench: string, result: Record<string, unknown>) =>
      emit({ bench, quick: QUICK, date: new Date().toISOString(), machine: m0, ...result });
    if (process.argv.includes('--replica-workers-only')) {
      const replicaWorker = await replicaWorkerKills(cluster, spec, numArg('--worker-kills', QUICK ? 2 : 6), workers);
      return only('recovery-supervised-replica-workers', { replicaWorker });
    }
    if (process.argv.includes('--replicas-only')) {
      const replica = await replicaKills(cluster, spec, replicaKillCount, workers);
      return only('recovery-supervised-replicas', { replica });
    }
    const child = await childKills(cluster, spec, numArg('--child-kills', QUICK ? 3 : 10), workers);
    const standby = await standbyKills(cluster, spec, numArg('--worker-kills', QUICK ? 1 : 3), workers);
    const loop = await crashLoop(cluster, spec, workers);
    const replica = await replicaKills(cluster, spec, replicaKillCount, workers);
    const replicaWorker = await replicaWorkerKills(cluster, spec, numArg('--worker-kills', QUICK ? 1 : 3), workers);
    table('recovery --supervised (goals: child kill <= 2 s, worker kill with a standby <= 5 s, median)', [
      {
        case: 'training process SIGKILLed',
        kills: child.kills,
        'first step s median': child.firstStepS.median,
        max: child.firstStepS.max,
        'recomputed max': child.recomputed.max,
        'interval steps': child.intervalSteps,
      },
      {
        case: `worker SIGKILLed, standby (heartbeat timeout ${standby.heartbeatTimeoutSeconds} s)`,
        kills: standby.kills,
        'first step s median': standby.firstStepS.median,
        max: standby.firstStepS.max,
        'retry started s median': standby.retryStartedS.median,
      },
      {
        case: `replica's training process SIGKILLed (${replica.fromMemory}/${replica.kills} restored from memory)`,
        kills: replica.kills,
        'first step s median': replica.trainsAgainS.median,
        max: replica.trainsAgainS.max,
        'recomputed max': `restore ${replica.restoreMs.median} ms`,
      },
      {
        case: `a replica's worker SIGKILLed, standby (heartbeat timeout ${replicaWorker.heartbeatTimeoutSeconds} s)`,
        kills: replicaWorker.kills,
        'first step s median': replicaWorker.firstStepS.median,
        max: replicaWorker.firstStepS.max,
        'retry started s median': replicaWorker.retryStartedS.median,
      },
      {
        case: 'crash loop reported',
        kills: 3,
        'first step s median': loop.secondsToFailure,
        max: '',
        'recomputed max': loop.message.slice(0, 60),
      },
    ]);
    emit({
      bench: 'recovery-supervised',
      quick: QUICK,
      date: new Date().toISOString(),
      machine: m0,
      note: 'wall-clock figures on this machine at its load (machine.loadavg1m): upper bounds on a busy machine',
      spec,
      childKill: { ...child, goalS: 2, pass: child.firstStepS.median <= 2 && child.recomputedWithinInterval },
      workerKillWithStandby: { ...standby, goalS: 5, pass: standby.firstStepS.median <= 5 },
      crashLoop: loop,
      replicaKill: replica,
      replicaWorkerKillWithStandby: { ...replicaWorker, goalS: 5, pass: replicaWorker.firstStepS.median <= 5 },
    });
  } finally {
    await shutdown(cluster, workers);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
