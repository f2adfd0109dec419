// The report's data: the run's metrics log (step resolution) and checkpoints from its storage, chunk summaries from
// the workflow history (across continue-as-new), evaluations, recoveries and learning-rate changes, merged; and,
// with --compare, another run's log (a fork beside its parent).
import type { Client } from '@temporalio/client';
import { decodePayload } from '../../codec';
import type { CheckpointSummary } from '../../checkpoint';
import type { ChunkSummary, EvalResult, Recovery } from '../../activities/types';
import type { RunSpec } from '../../spec';
import { evalKey, readMetricsLog, type MetricsLog } from '../../telemetry/metrics-log';
import { managerForRun } from '../checkpoints';
import { CliError, viewRun, type RunView } from '../common';

export interface ChunkRecord extends ChunkSummary {
  /** Set for a distributed run's chunk, which is one sync round (its syncReplicas result). */
  round?: number;
  /** The workflow execution (Temporal run id) that ran the chunk. */
  execution: string;
  completedAt: string | null;
}

export interface RunHistory {
  executions: string[];
  chunks: ChunkRecord[];
}

type Timestamp = { seconds?: unknown; nanos?: number | null } | null | undefined;
function isoTime(ts: Timestamp): string | null {
  if (!ts || ts.seconds === undefined || ts.seconds === null) return null;
  const ms = Number(String(ts.seconds)) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

/** The activities whose results are the run's chunks: a chunk of a single run, a sync round of a distributed one. */
const CHUNK_ACTIVITIES = new Set(['trainChunk', 'syncReplicas']);

/** Every chunk (or round) result of the run: the latest execution and those it continued from, oldest first. */
export async function fetchRunHistory(client: Client, runId: string, latestExecution: string): Promise<RunHistory> {
  const executions: string[] = [];
  const perExecution: ChunkRecord[][] = [];
  const seen = new Set<string>();
  let execution: string | undefined = latestExecution;
  while (execution && !seen.has(execution)) {
    seen.add(execution);
    const history = await client.workflow.getHandle(runId, execution).fetchHistory();
    const scheduled = new Map<string, string>();
    const chunks: ChunkRecord[] = [];
    let previous: string | undefined;
    for (const ev of history.events ?? []) {
      const started = ev.workflowExecutionStartedEventAttributes;
      if (started) previous = started.continuedExecutionRunId || undefined;
      const sch = ev.activityTaskScheduledEventAttributes;
      if (sch) scheduled.set(String(ev.eventId), sch.activityType?.name ?? '');
      const done = ev.activityTaskCompletedEventAttributes;
      if (done && CHUNK_ACTIVITIES.has(scheduled.get(String(done.scheduledEventId)) ?? '')) {
        const payload = done.result?.payloads?.[0];
        if (!payload) continue;
        const s = (await decodePayload(client, payload as never)) as ChunkSummary;
        if (s && typeof s.step === 'number') chunks.push({ ...s, execution, completedAt: isoTime(ev.eventTime) });
      }
    }
    executions.unshift(execution);
    perExecution.unshift(chunks);
    execution = previous;
  }
  return { executions, chunks: perExecution.flat() };
}

export interface ReportData {
  runId: string;
  generatedAt: string;
  view: RunView;
  spec: RunSpec | null;
  history: RunHistory;
  evals: EvalResult[];
  checkpoints: CheckpointSummary[];
  checkpointsError: string | null;
  recoveries: Array<Recovery & { step: number }>;
  learningRateChanges: Array<{ step: number; value: number }>;
  totalSteps: number;
  /** The metrics log up to the newest checkpoint; null when it could not be read (logError says why). */
  log: MetricsLog | null;
  logError: string | null;
  /** Another run drawn over this one (--compare), e.g. a fork's parent. */
  compare: CompareData | null;
}

export interface CompareData {
  runId: string;
  log: MetricsLog | null;
  error: string | null;
  totalSteps: number;
}

/** The metrics log of a run up to its newest (listed, not damaged) checkpoint. */
async function logOf(
  manager: Awaited<ReturnType<typeof managerForRun>>,
  checkpoints: CheckpointSummary[],
): Promise<MetricsLog | null> {
  const ends = checkpoints.filter((c) => c.valid !== false).map((c) => c.step);
  if (!ends.length) return null;
  return readMetricsLog(manager.store, manager.runId, Math.max(...ends));
}

/** The run drawn for comparison: its log from its own storage (the same --storage, else its spec's). */
export async function collectCompareData(client: Client, runId: string, storage?: string): Promise<CompareData> {
  const manager = await managerForRun(client, runId, storage);
  try {
    const checkpoints = await manager.list();
    const log = await logOf(manager, checkpoints);
    return { runId, log, error: null, totalSteps: Math.max(1, ...checkpoints.map((c) => c.step)) };
  } catch (err) {
    return { runId, log: null, error: (err as Error).message, totalSteps: 1 };
  }
}

/** The step the run has reached: its result, else its live progress, else its newest chunk. */
export function currentStep(d: ReportData): number {
  const last = d.history.chunks[d.history.chunks.length - 1];
  return d.view.result?.step ?? d.view.progress?.step ?? last?.step ?? 0;
}

export async function collectReportData(
  client: Client,
  runId: string,
  opts: { storage?: string; verify?: boolean; compare?: string },
): Promise<ReportData> {
  const view = await viewRun(client, runId);
  const desc = await client.workflow.getHandle(runId).describe();
  const history = await fetchRunHistory(client, runId, desc.runId);

  let checkpoints: CheckpointSummary[] = [];
  let checkpointsError: string | null = null;
  const evals = new Map<string, EvalResult>();
  let log: MetricsLog | null = null;
  let logError: string | null = null;
  try {
    const manager = await managerForRun(client, runId, opts.storage);
    checkpoints = await manager.list({ verify: opts.verify });
    try {
      log = await logOf(manager, checkpoints);
      for (const e of log?.evals ?? []) evals.set(evalKey(e), e);
    } catch (err) {
      logError = (err as Error).message;
    }
    // The newest manifest holds every evaluation of the run, also those of executions before a restart.
    const newest = checkpoints.find((c) => c.valid !== false);
    if (newest) {
      const state = (await manager.readManifest(newest.id)).state as { metrics?: { evals?: EvalResult[] } };
      for (const e of state.metrics?.evals ?? []) evals.set(evalKey(e), e);
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    checkpointsError = (err as Error).message;
  }
  for (const c of history.chunks) for (const e of c.evals ?? []) evals.set(evalKey(e), e);
  if (view.progress?.lastEval) evals.set(evalKey(view.progress.lastEval), view.progress.lastEval);

  const recoveries: ReportData['recoveries'] = history.chunks
    .filter((c) => c.recovery)
    .map((c) => ({ ...c.recovery!, step: c.fromStep }));
  for (const r of view.progress?.recoveries ?? [])
    if (!recoveries.some((x) => x.step === r.step && x.attempt === r.attempt && x.reason === r.reason))
      recoveries.push(r);
  recoveries.sort((a, b) => a.step - b.step);

  const lastChunk = history.chunks[history.chunks.length - 1];
  const totalSteps = Math.max(
    view.progress?.totalSteps ?? 0,
    view.result?.totalSteps ?? 0,
    lastChunk?.totalSteps ?? 0,
    ...checkpoints.map((c) => c.step),
    1,
  );
  return {
    runId,
    generatedAt: new Date().toISOString(),
    view,
    spec: view.spec,
    history,
    evals: [...evals.values()].sort((a, b) => a.step - b.step),
    checkpoints,
    checkpointsError,
    recoveries,
    learningRateChanges: view.progress?.learningRateChanges ?? [],
    totalSteps,
    log,
    logError,
    compare: opts.compare ? await collectCompareData(client, opts.compare, opts.storage) : null,
  };
}
