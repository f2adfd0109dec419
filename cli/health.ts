// `health RUN_ID [--max-age SECONDS]`: exits 1 with the reasons when a run needs attention (for cron,
// probes and CI): the newest checkpoint is damaged, chunks (and so their checkpoint commits) failed within the
// last --max-age seconds or are failing now, no checkpoint was committed for too long while the run is running,
// or the run failed.
import type { Client } from '@temporalio/client';
import { CliError, EXIT, runStatus, viewRun, type Out, type PendingActivity } from './common';
import { managerForRun } from './checkpoints';
import { failureMessageOf } from '../codec';
import { defineCommand, RUN_ID_ARGUMENT } from './command';
import { connectClient } from './connection';

export interface HealthReport {
  runId: string;
  ok: boolean;
  status: string;
  alerts: string[];
  newestCheckpoint: { id: string; step: number; createdAt: string; ageSeconds: number } | null;
  /** Failed chunk attempts within the window (a chunk that threw, e.g. a commit hitting ENOSPC; not timeouts). */
  recentFailures: { count: number; windowSeconds: number; last: { message: string; at: string } | null };
}

type Failure = { at: number; message: string };

interface FailureInfo {
  message?: string | null;
  cause?: FailureInfo | null;
  timeoutFailureInfo?: unknown;
}

/**
 * A timeout is a lost worker (SIGKILL, host gone): its retry is the designed recovery, and a dead worker shows up
 * as staleness and "no worker answers". What counts here is a chunk that threw: a commit or a read that failed.
 */
const threw = (f: FailureInfo | null | undefined): f is FailureInfo => Boolean(f) && !f!.timeoutFailureInfo;

/** The deepest cause's message (decrypted when failures are encrypted): it names the problem, the wrappers do not. */
async function failureMessage(client: Client, f: FailureInfo | null | undefined): Promise<string> {
  let m = (f && (await failureMessageOf(client, f))) || 'unknown failure';
  for (let c = f?.cause; c; c = c.cause) {
    const cm = await failureMessageOf(client, c);
    if (cm) m = cm;
  }
  return m;
}

/** Milliseconds of a protobuf Timestamp ({seconds: Long, nanos}), NaN when absent. */
const ms = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  ts?.seconds != null ? Number(ts.seconds) * 1000 + Math.round((ts.nanos ?? 0) / 1e6) : NaN;

/**
 * Failed activity attempts of the run's current execution, from the server alone (no worker needed). Temporal
 * records a retried attempt's failure only as the next attempt's `attempt`/`lastFailure`: on the pending
 * activity while it retries, and on ActivityTaskStarted once the chunk finally ran.
 */
async function activityFailures(
  client: Client,
  runId: string,
  pending: PendingActivity[],
): Promise<{ all: Failure[]; failingNow: { attempt: number; failure: Failure } | null }> {
  const all: Failure[] = [];
  let failingNow: { attempt: number; failure: Failure } | null = null;
  for (const p of pending) {
    const attempt = p.attempt ?? 1;
    if (attempt > 1 && threw(p.lastFailure)) {
      const at = ms(p.lastAttemptCompleteTime) || ms(p.lastStartedTime) || Date.now();
      const failure = { at, message: await failureMessage(client, p.lastFailure) };
      for (let i = 1; i < attempt; i++) all.push(failure);
      failingNow = { attempt, failure };
    }
  }
  const history = await client.workflow.getHandle(runId).fetchHistory();
  for (const e of history.events ?? []) {
    const at = ms(e.eventTime);
    const started = e.activityTaskStartedEventAttributes;
    if (started && (started.attempt ?? 1) > 1 && threw(started.lastFailure)) {
      const failure = { at, message: await failureMessage(client, started.lastFailure) };
      for (let i = 1; i < (started.attempt ?? 1); i++) all.push(failure);
    }
    const failed = e.activityTaskFailedEventAttributes?.failure;
    if (threw(failed)) all.push({ at, message: await failureMessage(client, failed) });
  }
  return { all, failingNow };
}

export async function healthCommand(
  client: Client,
  out: Out,
  runId: string,
  opts: { maxAgeSeconds: number; storage?: string },
): Promise<number> {
  const view = await viewRun(client, runId);
  const alerts: string[] = [];
  const status = runStatus(view.status, view.progress?.status ?? view.result?.status);
  if (['FAILED', 'TERMINATED', 'TIMED_OUT', 'CANCELED', 'CANCELLED'].includes(view.status))
    alerts.push(`run ${view.status.toLowerCase()}${view.failure ? `: ${view.failure}` : ''}`);

  const manager = await managerForRun(client, runId, opts.storage);
  let newestCheckpoint: HealthReport['newestCheckpoint'] = null;
  let storageReadable = true;
  try {
    const list = await manager.list();
    const newest = list[list.length - 1] ?? null;
    if (newest) {
      const v = await manager.verify(newest.id);
      if (!v.ok)
        alerts.push(
          `newest checkpoint ${newest.id} is damaged: ${v.problems.map((p) => (p.blob ? `${p.blob}: ${p.reason}` : p.reason)).join('; ')}`,
        );
      const created = newest.createdAt ? Date.parse(newest.createdAt) : NaN;
      const ageSeconds = Number.isFinite(created) ? Math.round((Date.now() - created) / 1000) : -1;
      newestCheckpoint = { id: newest.id, step: newest.step, createdAt: newest.createdAt, ageSeconds };
    }
  } catch (err) {
    // An unreadable store is a finding to report, not a reason for the health check itself to crash.
    storageReadable = false;
    alerts.push(`cannot read the run's checkpoints: ${(err as Error).message}`);
  }

  // Like the CheckpointCommitFailed Prometheus rule (any failure in a window), from the server's records: a
  // failing commit fails its chunk, and Temporal retries it; checkpoints may still look fresh meanwhile.
  const { all, failingNow } = await activityFailures(client, runId, view.pending);
  const since = Date.now() - opts.maxAgeSeconds * 1000;
  const recent = all.filter((f) => f.at >= since).sort((a, b) => a.at - b.at);
  const last = recent[recent.length - 1] ?? failingNow?.failure ?? null;
  const recentFailures: HealthReport['recentFailures'] = {
    count: recent.length,
    windowSeconds: opts.maxAgeSeconds,
    last: last ? { message: last.message, at: new Date(last.at).toISOString() } : null,
  };
  if (failingNow && view.status === 'RUNNING')
    alerts.push(
      `failing: chunk attempt ${failingNow.attempt} after ${failingNow.attempt - 1} failed attempt(s), last ${Math.round((Date.now() - failingNow.failure.at) / 1000)}s ago: ${failingNow.failure.message}`,
    );
  else if (recent.length)
    alerts.push(
      `${recent.length} failed chunk attempt(s) in the last ${opts.maxAgeSeconds}s (checkpoint commits included), last: ${last!.message}`,
    );

  // A run that is training must keep committing; a paused one is allowed to be quiet.
  const training = view.status === 'RUNNING' && !['paused', 'pausing'].includes(status);
  if (training) {
    if (!view.progress) alerts.push('no worker answers the progress query (is any worker running on the task queue?)');
    const age = newestCheckpoint?.ageSeconds ?? -1;
    if (newestCheckpoint && age > opts.maxAgeSeconds)
      alerts.push(`stale: newest checkpoint ${newestCheckpoint.id} is ${age}s old (max ${opts.maxAgeSeconds}s)`);
    if (!newestCheckpoint && storageReadable) alerts.push('no checkpoint committed yet');
  }
  const report: HealthReport = {
    runId,
    ok: alerts.length === 0,
    status,
    alerts,
    newestCheckpoint,
    recentFailures,
  };
  out.emit(report, () =>
    report.ok
      ? `run ${runId}: ok (${status}; newest checkpoint ${newestCheckpoint?.id ?? '-'}, ${newestCheckpoint?.ageSeconds ?? '-'}s old)`
      : [`run ${runId}: ALERT (${status})`, ...alerts.map((a) => `  - ${a}`)].join('\n'),
  );
  return report.ok ? EXIT.ok : EXIT.check;
}

export const healthDefinition = defineCommand({
  name: 'health',
  summary:
    'exit 1 with reasons: newest checkpoint damaged or stale, chunks (commits) failing or failed within `--max-age`, no worker answers, run failed',
  arguments: [RUN_ID_ARGUMENT],
  options: [
    {
      name: 'max-age',
      value: 'SECONDS',
      description: 'how far back failed chunks count, and when a checkpoint is stale (default 600)',
    },
    { name: 'storage', value: 'URL', description: "read the checkpoints there instead of the run's spec's storage" },
  ],
  async run({ args, opts, out }) {
    const maxAge = opts['max-age'] === undefined ? 600 : Number(opts['max-age']);
    if (!Number.isFinite(maxAge) || maxAge <= 0)
      throw new CliError(`--max-age must be a positive number of seconds`, EXIT.usage);
    const runId = args.RUN_ID;
    return healthCommand(await connectClient(), out, runId, { maxAgeSeconds: maxAge, storage: opts.storage });
  },
});
