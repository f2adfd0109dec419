// `health RUN_ID [--max-age SECONDS]`: exits 1 with the reasons when a run needs attention (for cron,
// probes and CI): the newest checkpoint is damaged, no checkpoint was committed for too long while the
// run is running, or the run failed.
import type { Client } from '@temporalio/client';
import { viewRun, type Out } from './common';
import { managerForRun } from './checkpoints';

export interface HealthReport {
  runId: string;
  ok: boolean;
  status: string;
  alerts: string[];
  newestCheckpoint: { id: string; step: number; createdAt: string; ageSeconds: number } | null;
}

export async function healthCommand(
  client: Client,
  out: Out,
  runId: string,
  opts: { maxAgeSeconds: number; storage?: string },
): Promise<number> {
  const view = await viewRun(client, runId);
  const alerts: string[] = [];
  const status = view.progress?.status ?? view.result?.status ?? view.status.toLowerCase();
  if (['FAILED', 'TERMINATED', 'TIMED_OUT'].includes(view.status))
    alerts.push(`run ${view.status.toLowerCase()}${view.failure ? `: ${view.failure}` : ''}`);

  const manager = await managerForRun(client, runId, opts.storage);
  const list = await manager.list();
  const newest = list[list.length - 1] ?? null;
  let newestCheckpoint: HealthReport['newestCheckpoint'] = null;
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
  // A run that is training must keep committing; a paused one is allowed to be quiet.
  const training = view.status === 'RUNNING' && !['paused', 'pausing'].includes(status);
  if (training) {
    if (!view.progress) alerts.push('no worker answers the progress query (is any worker running on the task queue?)');
    const age = newestCheckpoint?.ageSeconds ?? -1;
    if (newestCheckpoint && age > opts.maxAgeSeconds)
      alerts.push(`stale: newest checkpoint ${newestCheckpoint.id} is ${age}s old (max ${opts.maxAgeSeconds}s)`);
    if (!newestCheckpoint) alerts.push('no checkpoint committed yet');
  }
  const report: HealthReport = { runId, ok: alerts.length === 0, status, alerts, newestCheckpoint };
  out.emit(report, () =>
    report.ok
      ? `run ${runId}: ok (${status}; newest checkpoint ${newestCheckpoint?.id ?? '-'}, ${newestCheckpoint?.ageSeconds ?? '-'}s old)`
      : [`run ${runId}: ALERT (${status})`, ...alerts.map((a) => `  - ${a}`)].join('\n'),
  );
  return report.ok ? 0 : 1;
}
