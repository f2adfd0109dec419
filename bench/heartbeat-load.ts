// How short the heartbeat timeout can be: a run trains for `--minutes` while other processes keep every core busy
// (one busy loop per core, at the same priority), and the server's view of the running chunk is polled every 200 ms:
// the largest heartbeat age (now - the last heartbeat the server recorded) is the margin a timeout must cover, and
// any attempt after the first is a spurious retry (nothing was killed). A recorded run (the run's `recoveries`) and
// the attempts seen by polling both count.
//
//   npm run build && node dist/bench/heartbeat-load.js [--minutes 20] [--heartbeat 2] [--load 2]
//
// JSON out (stdout); the table is in docs/benchmarks.md.
import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateSpec } from '../spec/validate';
import { progressQuery } from '../workflows/definitions';
import { emit, log, machine, numArg, round, sleep, table } from './common';
import { shutdown, startCluster, startTraining, startWorker, type TestCluster, type WorkerProcess } from './runs';

const tsMs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): number | null =>
  t?.seconds == null ? null : Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);

/** One busy loop per `n`: the machine fully loaded by another process. */
function loadGenerators(n: number): ChildProcess[] {
  return Array.from({ length: n }, () =>
    spawn(process.execPath, ['-e', 'for (;;) { Math.sqrt(Math.random()); }'], { stdio: 'ignore' }),
  );
}

async function main(): Promise<void> {
  const minutes = numArg('--minutes', 20);
  const heartbeatS = numArg('--heartbeat', 2);
  const loaders = numArg('--load', os.cpus().length);
  const workers: WorkerProcess[] = [];
  let cluster: TestCluster | null = null;
  const load: ChildProcess[] = [];
  try {
    cluster = await startCluster();
    workers.push(await startWorker(cluster));
    // A CNN with commits every 10 s and epoch-end evaluations: more epochs than the bench lasts.
    const spec = validateSpec({
      model: 'mnist-cnn',
      dataset: { name: 'mnist', trainLimit: 12800, testLimit: 1000 },
      epochs: 1000,
      batchSize: 32,
      chunkSteps: 400,
      seed: 7,
      optimizer: { name: 'adam', learningRate: 0.001 },
      checkpoint: { storage: `file://${path.join(cluster.dir, 'ckpt-load')}`, everySeconds: 10, keepLatest: 2 },
      heartbeatTimeoutSeconds: heartbeatS,
    });
    const handle = await startTraining(cluster, spec, 'hb-load');
    load.push(...loadGenerators(loaders));
    const m0 = machine('default');
    const t0 = Date.now();
    let maxAgeMs = 0;
    let maxAttempt = 1;
    let polls = 0;
    const chunks = new Set<string>();
    let lastStep = 0;
    while (Date.now() - t0 < minutes * 60_000) {
      const d = await handle.describe();
      if (d.status.name !== 'RUNNING') throw new Error(`run ended: ${d.status.name}`);
      const a = d.raw.pendingActivities?.find((p) => p.activityType?.name === 'trainChunk');
      const hb = tsMs(a?.lastHeartbeatTime);
      const started = tsMs(a?.lastStartedTime);
      if (a && hb !== null && started !== null && hb >= started) {
        maxAgeMs = Math.max(maxAgeMs, Date.now() - hb);
        maxAttempt = Math.max(maxAttempt, a.attempt ?? 1);
        chunks.add(a.activityId ?? '');
      }
      const data = a?.heartbeatDetails?.payloads?.[0]?.data;
      if (data?.length) lastStep = (JSON.parse(Buffer.from(data).toString()) as { step: number }).step;
      polls++;
      await sleep(200);
    }
    const loadavg = round(os.loadavg()[0], 2);
    for (const p of load.splice(0)) p.kill('SIGKILL');
    const recorded = (await handle.query(progressQuery)).recoveries;
    const recoveries = recorded.length;
    await handle.terminate('benchmark done').catch(() => undefined);
    const result = {
      bench: 'heartbeat-load',
      date: new Date().toISOString(),
      machine: m0,
      minutes,
      heartbeatTimeoutSeconds: heartbeatS,
      loadProcesses: loaders,
      loadavg1mAtEnd: loadavg,
      polls,
      chunks: chunks.size,
      steps: lastStep,
      maxHeartbeatAgeS: round(maxAgeMs / 1000, 2),
      maxAttempt,
      recoveries,
      recoveredAt: recorded.map((r) => ({ step: r.step, attempt: r.attempt, reason: r.reason })),
      spuriousRetries: Math.max(maxAttempt - 1, recoveries),
    };
    table(`heartbeat timeout ${heartbeatS} s under load (${loaders} busy processes, ${minutes} min)`, [result]);
    emit(result);
  } finally {
    for (const p of load) p.kill('SIGKILL');
    log('heartbeat-load: shutting down');
    await shutdown(cluster, workers);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
