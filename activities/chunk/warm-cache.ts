// Trainers kept in memory between chunks of the same run, so the next chunk skips a restore.
import type { Trainer } from '../../training';
import type { SpareSnapshot } from '../commit';

export interface WarmEntry {
  trainer: Trainer;
  /** The checkpoint the trainer's state equals: only a chunk asking to start from exactly it may take it. */
  checkpointId: string;
  specHash: string;
  /**
   * The chunk's last snapshot (of `checkpointId`): the next chunk's first commit copies into it and stores only the
   * rows that changed. It keeps a second copy of the weights and slots while the trainer waits between chunks: the
   * buffers that commit would otherwise allocate afresh (tens of ms per 100 MB of fresh pages).
   */
  spare?: SpareSnapshot;
}

export class WarmTrainers {
  private readonly entries = new Map<string, WarmEntry>();

  constructor(private readonly max: number) {}

  /**
   * The warm trainer of `runId` if it holds exactly `checkpointId` under the same spec, else null. Either way the
   * entry leaves the cache: a running chunk owns its trainer, and a concurrent attempt must never share it.
   */
  take(runId: string, checkpointId: string, specHash: string): WarmEntry | null {
    const e = this.entries.get(runId);
    if (!e) return null;
    this.entries.delete(runId);
    if (e.checkpointId === checkpointId && e.specHash === specHash) return e;
    e.trainer.dispose();
    return null;
  }

  /** Drops the warm trainer of `runId`, if any (a chunk that restores or starts fresh makes it stale). */
  drop(runId: string): void {
    this.entries.get(runId)?.trainer.dispose();
    this.entries.delete(runId);
  }

  /** Drops every warm trainer (the backend that holds them failed: none of their tensors can be trusted). */
  clear(): void {
    for (const runId of [...this.entries.keys()]) this.drop(runId);
  }

  put(runId: string, entry: WarmEntry): void {
    this.drop(runId);
    this.entries.set(runId, entry);
    while (this.entries.size > this.max) {
      const [oldest, e] = this.entries.entries().next().value as [string, WarmEntry];
      e.trainer.dispose();
      this.entries.delete(oldest);
    }
  }
}
