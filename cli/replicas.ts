// Per-replica progress of a distributed run, for `status` and `watch`: the server's pending trainReplica activities
// (their heartbeats and the worker that holds each) and, between rounds, the last round the workflow recorded.
import { defaultPayloadConverter } from '@temporalio/common';
import type { ReplicaHeartbeat } from '../activities/replica-types';
import type { RunView } from './common';

export interface ReplicaRow {
  replica: number;
  round: number | null;
  step: number | null;
  loss: number | null;
  samplesPerSec: number | null;
  /** pid@host of the worker holding (or last holding) the replica. */
  worker: string;
  attempt: number;
  state: 'training' | 'done';
}

export function replicaRows(v: RunView): ReplicaRow[] {
  const rows = new Map<number, ReplicaRow>();
  for (const r of v.progress?.lastRound?.replicas ?? []) {
    rows.set(r.replica, {
      replica: r.replica,
      round: v.progress!.lastRound!.round,
      step: null,
      loss: null,
      samplesPerSec: r.samplesPerSec,
      worker: r.worker,
      attempt: r.attempt,
      state: 'done',
    });
  }
  for (const a of v.pending ?? []) {
    if (a.activityType?.name !== 'trainReplica') continue;
    let hb: ReplicaHeartbeat | null = null;
    const payload = a.heartbeatDetails?.payloads?.[0];
    try {
      hb = payload ? (defaultPayloadConverter.fromPayload(payload as never) as ReplicaHeartbeat) : null;
    } catch {
      hb = null;
    }
    if (!hb || typeof hb.replica !== 'number') continue;
    rows.set(hb.replica, {
      replica: hb.replica,
      round: hb.round,
      step: hb.step,
      loss: hb.loss,
      samplesPerSec: hb.samplesPerSec,
      worker: a.lastWorkerIdentity ?? '?',
      attempt: a.attempt ?? 1,
      state: 'training',
    });
  }
  return [...rows.values()].sort((a, b) => a.replica - b.replica);
}

/** One line per replica, for `status`. */
export function replicaLines(rows: ReplicaRow[]): string[] {
  return rows.map(
    (r) =>
      `  replica ${r.replica}: ${r.state === 'training' ? `round ${r.round} step ${r.step}` : `done round ${r.round}`}` +
      `  loss ${r.loss === null ? '-' : r.loss.toFixed(4)}  ${r.samplesPerSec ? Math.round(r.samplesPerSec) : '-'} samples/s` +
      `  on ${r.worker}${r.attempt > 1 ? ` (attempt ${r.attempt})` : ''}`,
  );
}

/** A short suffix for `watch`'s one-line progress: which replica is at which step on which worker. */
export function replicaSuffix(v: RunView): string {
  const rows = replicaRows(v).filter((r) => r.state === 'training');
  if (!rows.length) return '';
  return ' | ' + rows.map((r) => `r${r.replica}:${r.step}@${r.worker.split('@')[0]}`).join(' ');
}
