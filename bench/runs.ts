// Durable runs for benchmarks: a real dev server and worker processes (test/helpers/cluster), runs started the
// way `durable-train start` starts them, and their per-chunk timings read back from history.
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { ChunkSummary } from '../activities/types';
import { hasSearchAttributes } from '../cli/start';
import type { RunSpec } from '../spec/types';
import {
  startCluster as startTestCluster,
  spawnWorker,
  type TestCluster,
  type WorkerProcess,
} from '../test/helpers/cluster';
import { TRAINING_WORKFLOW } from '../workflows/definitions';
import type { RunResult } from '../workflows/progress';
import type { TrainingInput } from '../workflows/training';
import { activityTimeline, cpuSecondsOf, log, median, now, selfCpuSeconds, type Timeline } from './common';

export { spawnWorker, type TestCluster, type WorkerProcess };

// Everything started here is stopped if the benchmark is interrupted (SIGINT/SIGTERM), so no dev server or worker
// outlives it.
const live = { clusters: new Set<TestCluster>(), workers: new Set<WorkerProcess>() };
let handlersInstalled = false;
function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`bench: ${sig}: stopping workers and dev servers`);
      void shutdown([...live.clusters], [...live.workers]).finally(() => process.exit(130));
    });
  }
}

export async function startCluster(): Promise<TestCluster> {
  installSignalHandlers();
  const c = await startTestCluster();
  live.clusters.add(c);
  return c;
}

export async function startTraining(
  cluster: TestCluster,
  spec: RunSpec,
  runId: string,
): Promise<WorkflowHandleWithFirstExecutionRunId> {
  const input: TrainingInput = {
    spec,
    from: null,
    searchAttributes: await hasSearchAttributes(cluster.client, 'default'),
  };
  return cluster.client.workflow.start(TRAINING_WORKFLOW, {
    workflowId: runId,
    taskQueue: cluster.taskQueue,
    args: [input],
    memo: { spec },
  });
}

export async function startWorker(cluster: TestCluster, env?: NodeJS.ProcessEnv): Promise<WorkerProcess> {
  const w = spawnWorker(cluster, { env });
  live.workers.add(w);
  void w.exited.then(() => live.workers.delete(w));
  await w.ready;
  return w;
}

export interface DurableRun {
  runId: string;
  wallMs: number;
  result: RunResult;
  timeline: Timeline;
  /** CPU seconds spent by the worker, the dev server and this process during the run. */
  cpu: { worker: number; server: number; bench: number };
  chunks: ChunkBreakdown;
}

export interface ChunkBreakdown {
  chunks: number;
  /** Sums over all trainChunk results (ms). */
  trainMs: number;
  commitMs: number;
  commits: number;
  /** Sum of trainChunk start-to-close (ms). */
  chunkActivityMs: number;
  /** Sum of applyRetention start-to-close (ms). */
  retentionMs: number;
  /** Medians per chunk (ms). */
  perChunk: {
    period: number;
    trainChunkScheduleToStart: number;
    trainChunkExec: number;
    train: number;
    commit: number;
    chunkToRetentionScheduled: number;
    retentionScheduleToStart: number;
    retentionExec: number;
    retentionToNextChunkScheduled: number;
  };
  sources: Record<string, number>;
  /** applyRetention start-to-close, median over the first and the last tenth of the chunks (growth over a run). */
  retentionExecFirstTenth: number;
  retentionExecLastTenth: number;
}

/** Per-chunk costs from a timeline (chunk i = trainChunk i, then applyRetention i, then trainChunk i+1). */
export function breakdown(t: Timeline): ChunkBreakdown {
  const chunks = t.activities.filter((a) => a.type === 'trainChunk' && a.outcome === 'completed');
  const rets = t.activities.filter((a) => a.type === 'applyRetention' && a.outcome === 'completed');
  const summaries = chunks.map((c) => c.result as ChunkSummary);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const d = (a: number | null, b: number | null) => (a === null || b === null ? NaN : b - a);
  const period: number[] = [];
  const toRet: number[] = [];
  const retToNext: number[] = [];
  for (let i = 0; i < chunks.length; i++) {
    if (i + 1 < chunks.length) period.push(chunks[i + 1].scheduledMs - chunks[i].scheduledMs);
    const r = rets.find((x) => x.scheduledMs >= (chunks[i].closedMs ?? Infinity));
    if (r) {
      toRet.push(r.scheduledMs - chunks[i].closedMs!);
      if (i + 1 < chunks.length && chunks[i + 1].scheduledMs >= (r.closedMs ?? Infinity))
        retToNext.push(chunks[i + 1].scheduledMs - r.closedMs!);
    }
  }
  const retExec = rets.map((r) => d(r.startedMs, r.closedMs));
  const tenth = Math.max(1, Math.floor(retExec.length / 10));
  const sources: Record<string, number> = {};
  for (const s of summaries) sources[s.source] = (sources[s.source] ?? 0) + 1;
  return {
    chunks: chunks.length,
    trainMs: sum(summaries.map((s) => s.trainMs)),
    commitMs: sum(summaries.map((s) => s.commitMs)),
    commits: sum(summaries.map((s) => s.commits)),
    chunkActivityMs: sum(chunks.map((c) => d(c.startedMs, c.closedMs))),
    retentionMs: sum(rets.map((r) => d(r.startedMs, r.closedMs))),
    perChunk: {
      period: median(period),
      trainChunkScheduleToStart: median(chunks.map((c) => d(c.scheduledMs, c.startedMs))),
      trainChunkExec: median(chunks.map((c) => d(c.startedMs, c.closedMs))),
      train: median(summaries.map((s) => s.trainMs)),
      commit: median(summaries.map((s) => s.commitMs)),
      chunkToRetentionScheduled: median(toRet),
      retentionScheduleToStart: median(rets.map((r) => d(r.scheduledMs, r.startedMs))),
      retentionExec: median(rets.map((r) => d(r.startedMs, r.closedMs))),
      retentionToNextChunkScheduled: median(retToNext),
    },
    sources,
    retentionExecFirstTenth: median(retExec.slice(0, tenth)),
    retentionExecLastTenth: median(retExec.slice(-tenth)),
  };
}

/** Starts a run, waits for its result; wall time from the start call to the result. */
export async function timedRun(
  cluster: TestCluster,
  worker: WorkerProcess,
  spec: RunSpec,
  runId: string,
): Promise<DurableRun> {
  const cpu0 = {
    worker: cpuSecondsOf(worker.proc.pid),
    server: cpuSecondsOf(cluster.server.pid),
    bench: selfCpuSeconds(),
  };
  const t0 = now();
  const handle = await startTraining(cluster, spec, runId);
  const result = (await handle.result()) as RunResult;
  const wallMs = now() - t0;
  const cpu = {
    worker: cpuSecondsOf(worker.proc.pid) - cpu0.worker,
    server: cpuSecondsOf(cluster.server.pid) - cpu0.server,
    bench: selfCpuSeconds() - cpu0.bench,
  };
  if (result.status !== 'completed') throw new Error(`run ${runId} ended ${result.status}`);
  const timeline = await activityTimeline(handle);
  return { runId, wallMs, result, timeline, cpu, chunks: breakdown(timeline) };
}

/** Closes workers and the cluster, logging instead of throwing. */
export async function shutdown(
  clusters: TestCluster | null | TestCluster[],
  workers: Iterable<WorkerProcess>,
): Promise<void> {
  for (const w of workers) await w.kill('SIGTERM').catch((e) => log(`worker kill: ${String(e)}`));
  for (const c of Array.isArray(clusters) ? clusters : clusters ? [clusters] : []) {
    await c.close().catch((e) => log(`cluster close: ${String(e)}`));
    live.clusters.delete(c);
  }
}
