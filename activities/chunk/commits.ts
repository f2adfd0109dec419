// The commits of one chunk: time-based ones while it trains (checkpoint.everySeconds) and the final one. Each commit
// becomes the parent of the next; one step is never committed twice.
import { log } from '@temporalio/activity';
import type { CheckpointManager, Manifest } from '../../checkpoint';
import type { Trainer } from '../../training';
import type { BackendInfo } from '../../training/backend';
import { commitTrainer } from '../commit';
import { storageUnavailable } from '../failures';
import { failureReason, type TrainingMetrics } from '../metrics';
import type { CheckpointPosition, CheckpointRef } from '../types';
import type { RunAlerts } from './alerts';
import type { ChunkCurves } from './curves';

export const positionOf = (m: Manifest): CheckpointPosition => ({
  runId: m.runId,
  id: m.id,
  step: m.step,
  epoch: m.epoch,
});

export class ChunkCommits {
  lastCommitted: CheckpointPosition | null = null;
  count = 0;
  ms = 0;
  private last: Manifest | null = null;
  private lastAt = Date.now();
  private readonly everyMs: number;

  constructor(
    private readonly o: {
      runId: string;
      manager: CheckpointManager;
      trainer: Trainer;
      backend: BackendInfo;
      specHash: string;
      /** The checkpoint the trainer started from: the parent of the first commit. */
      parent: CheckpointRef | null;
      everySeconds: number;
      metrics: TrainingMetrics;
      /** Counts storage failures in a row and raises 'save-failing' (without waiting for the webhook). */
      alerts?: RunAlerts;
      /** The run's metrics log: each commit's segment is written before its manifest, its event file after. */
      curves?: ChunkCurves;
      /** Re-sends the chunk's last heartbeat: called every second while a commit waits on storage. */
      keepAlive?: () => void;
    },
  ) {
    this.everyMs = o.everySeconds * 1000;
  }

  get curves(): ChunkCurves | undefined {
    return this.o.curves;
  }

  /** A time-based commit is due (never at the run's last step: the chunk-end commit follows at once). */
  due(step: number, totalSteps: number): boolean {
    return this.everyMs > 0 && Date.now() - this.lastAt >= this.everyMs && step < totalSteps;
  }

  /** The newest checkpoint of the run this chunk knows (its last commit, or where it started). */
  private lastId(): string | null {
    return this.last?.id ?? this.o.parent?.id ?? null;
  }

  /** Commits the trainer's current state, unless this very step is already committed (then that checkpoint). */
  async commit(reason: string): Promise<Manifest> {
    if (this.last && this.last.step === this.o.trainer.state.step) return this.last;
    const c0 = Date.now();
    // A commit waits on storage, not on the CPU: keep heartbeating so a slow store is not taken for a dead worker
    // (the attempt would be given up on its heartbeat timeout and its steps trained again).
    const keepAlive = this.o.keepAlive ? setInterval(this.o.keepAlive, 1000) : null;
    let m: Manifest;
    try {
      const st = this.o.trainer.state;
      await this.o.curves?.beforeCommit(st.step, st.totalSteps, st.metrics.evals);
      m = await commitTrainer(this.o.manager, this.o.trainer, {
        backend: this.o.backend,
        specHash: this.o.specHash,
        parent: this.last ? { runId: this.last.runId, id: this.last.id } : this.o.parent,
        reason,
      });
    } catch (err) {
      this.o.metrics.commitFailed(this.o.runId, failureReason(err));
      log.error('checkpoint commit failed', { runId: this.o.runId, error: (err as Error).message });
      const failure = storageUnavailable(err, `checkpoint commit of run ${this.o.runId} failed`);
      if (failure !== err) this.o.alerts?.storageFailed(this.o.runId, this.lastId(), (err as Error).message);
      throw failure;
    } finally {
      if (keepAlive) clearInterval(keepAlive);
    }
    const seconds = (Date.now() - c0) / 1000;
    this.ms += Date.now() - c0;
    this.o.metrics.committed(
      this.o.runId,
      m.step,
      seconds,
      m.blobs.reduce((n, b) => n + b.size, 0),
      reason,
    );
    this.o.alerts?.committed(this.o.runId, m.id);
    this.count += 1;
    this.lastAt = Date.now();
    this.last = m;
    this.lastCommitted = positionOf(m);
    await this.o.curves?.afterCommit().catch((err: unknown) => {
      throw storageUnavailable(err, `TensorBoard event file of run ${this.o.runId} at step ${m.step} not written`);
    });
    return m;
  }
}
