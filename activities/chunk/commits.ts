// The commits of one chunk: time-based ones while it trains (checkpoint.everySeconds) and the final one. Each commit
// has two phases: a snapshot between steps (the only time training waits) and a persist (hash, blobs, manifest) that
// runs in the background while the next steps train, in the persist thread (checkpoint/persist-thread.ts). A
// checkpoint counts as committed (lastCommitted, heartbeats, metrics, alerts, the chunk's summary) only once its
// manifest is durable. At most one persist is in flight: a commit due while one is still persisting waits for it
// first (back-pressure). A persist that failed fails the next commit, or the chunk's final one, with the error a
// synchronous commit would have given. Each checkpoint's parent is the previous durable one; one step is never
// committed twice.
import { log } from '@temporalio/activity';
import { storedPieces, type CheckpointManager, type CommitInput, type Manifest } from '../../checkpoint';
import type { Trainer } from '../../training';
import type { BackendInfo } from '../../training/backend';
import { persistSnapshot, snapshotForCommit, type SpareSnapshot } from '../commit';
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

/** The bytes `m` stored that `parent` (its parent checkpoint, if known here) does not reference. */
export function newBytesOf(m: Manifest, parent: Manifest | null | undefined): number {
  const had = new Set(parent?.blobs.flatMap(storedPieces).map((p) => p.sha256));
  const added = new Map(
    m.blobs
      .flatMap(storedPieces)
      .filter((p) => !had.has(p.sha256))
      .map((p) => [p.sha256, p.size]),
  );
  return [...added.values()].reduce((n, s) => n + s, 0);
}

export class ChunkCommits {
  /** The newest checkpoint of this chunk whose manifest is durable. */
  lastCommitted: CheckpointPosition | null = null;
  count = 0;
  /** Training time the commits took: snapshots and waits for a persist (back-pressure, the chunk's final commit). */
  ms = 0;
  private last: Manifest | null = null;
  private lastAt = Date.now();
  private readonly everyMs: number;
  /** The persist in the background, if any (it never rejects: its failure is kept in `failure`). */
  private inFlight: { step: number; done: Promise<void> } | null = null;
  /** What a failed background persist throws at the next commit (as a synchronous commit would have thrown it). */
  private failure: { error: unknown } | null = null;
  /**
   * The last snapshot whose persist succeeded, with its manifest: nothing holds its buffers any more, the next snapshot
   * copies into them, and its changed rows are stored as patches on that manifest's blobs.
   */
  private spare: SpareSnapshot | undefined;

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
      /** Re-sends the chunk's last heartbeat: called every second while training waits on a persist. */
      keepAlive?: () => void;
      /** Where a failed commit is logged (default: the activity's logger). */
      logError?: (message: string, meta: Record<string, unknown>) => void;
      /** The previous chunk's last snapshot, if the trainer is the warm one that took it (its manifest is `parent`). */
      spare?: SpareSnapshot;
    },
  ) {
    this.everyMs = o.everySeconds * 1000;
    if (o.spare && o.parent && o.spare.manifest.runId === o.parent.runId && o.spare.manifest.id === o.parent.id)
      this.spare = o.spare;
  }

  /** The last durable snapshot, for the next chunk of a warm trainer (null while a persist is in flight or failed). */
  get spareForNext(): SpareSnapshot | undefined {
    return this.inFlight || this.failure ? undefined : this.spare;
  }

  get curves(): ChunkCurves | undefined {
    return this.o.curves;
  }

  /** A time-based commit is due (never at the run's last step: the chunk-end commit follows at once). */
  due(step: number, totalSteps: number): boolean {
    return this.everyMs > 0 && Date.now() - this.lastAt >= this.everyMs && step < totalSteps;
  }

  /** The step of the persist in flight, or null. */
  get persisting(): number | null {
    return this.inFlight?.step ?? null;
  }

  /**
   * Phase one of a commit: waits for the persist in flight (back-pressure; its failure is thrown here), snapshots the
   * trainer and starts persisting it in the background. Training may go on once this resolves.
   */
  async start(reason: string): Promise<void> {
    const t0 = Date.now();
    await this.settle();
    const waitMs = Date.now() - t0;
    const st = this.o.trainer.state;
    if (this.last && this.last.step === st.step) return;
    let input: CommitInput;
    let previous: Manifest | undefined;
    let segment: Promise<void> | undefined;
    try {
      const reuse = this.spare;
      input = snapshotForCommit(
        this.o.trainer,
        {
          backend: this.o.backend,
          specHash: this.o.specHash,
          parent: this.last ? { runId: this.last.runId, id: this.last.id } : this.o.parent,
          reason,
          lend: this.o.manager.readsSharedMemory,
        },
        reuse,
      );
      this.spare = undefined;
      previous = reuse?.manifest;
      // Cut at once (the next steps go to the next segment); written, durable, before the manifest.
      segment = this.o.curves?.beforeCommit(st.step, st.totalSteps, st.metrics.evals);
    } catch (err) {
      throw this.failed(err);
    }
    const stallMs = Date.now() - t0;
    this.ms += stallMs;
    this.lastAt = Date.now();
    this.inFlight = { step: input.step, done: this.persist(input, previous, segment, reason, stallMs, waitMs) };
  }

  /** Waits for the persist in flight, if any (heartbeating meanwhile); throws its failure. */
  async settle(): Promise<void> {
    if (this.inFlight) {
      const keepAlive = this.o.keepAlive ? setInterval(this.o.keepAlive, 1000) : null;
      try {
        await this.inFlight.done;
      } finally {
        if (keepAlive) clearInterval(keepAlive);
        this.inFlight = null;
      }
    }
    const f = this.failure;
    this.failure = null;
    if (f) throw f.error;
  }

  /** Waits for the persist in flight and forgets its failure: for a chunk that fails anyway, so none outlives it. */
  async drain(): Promise<void> {
    await this.settle().catch(() => undefined);
  }

  /**
   * Commits the trainer's current state and waits until it is durable (the chunk's final commit), unless this very
   * step is already committed (then that checkpoint).
   */
  async commit(reason: string): Promise<Manifest> {
    await this.start(reason);
    const t0 = Date.now();
    await this.settle();
    this.ms += Date.now() - t0;
    return this.last!;
  }

  /** Phase two: blobs and manifest; then the checkpoint counts. Never rejects (a failure is kept for the next commit). */
  private async persist(
    input: CommitInput,
    previous: Manifest | undefined,
    segment: Promise<void> | undefined,
    reason: string,
    stallMs: number,
    waitMs: number,
  ): Promise<void> {
    const p0 = Date.now();
    let m: Manifest;
    try {
      await segment;
      m = await persistSnapshot(this.o.manager, input, { offThread: true, previous });
    } catch (err) {
      this.failure = { error: this.failed(err) };
      return;
    }
    const persistMs = Date.now() - p0;
    // Written, hashed and durable: no write or hash still reads these buffers (after a failure one might: never reused).
    this.spare = { input, manifest: m };
    this.o.metrics.committed(
      this.o.runId,
      m.step,
      (stallMs + persistMs) / 1000,
      m.blobs.reduce((n, b) => n + b.size, 0),
      reason,
      { stallSeconds: stallMs / 1000, waitSeconds: waitMs / 1000, persistSeconds: persistMs / 1000 },
      newBytesOf(m, previous ?? this.last),
    );
    this.o.alerts?.committed(this.o.runId, m.id);
    this.count += 1;
    this.last = m;
    this.lastCommitted = positionOf(m);
    try {
      await this.o.curves?.afterCommit();
    } catch (err) {
      this.failure = {
        error: storageUnavailable(err, `TensorBoard event file of run ${this.o.runId} at step ${m.step} not written`),
      };
    }
  }

  /** Counts and logs a failed commit; returns what to throw (a storage failure as StorageUnavailable). */
  private failed(err: unknown): unknown {
    this.o.metrics.commitFailed(this.o.runId, failureReason(err));
    const meta = { runId: this.o.runId, error: (err as Error).message };
    if (this.o.logError) this.o.logError('checkpoint commit failed', meta);
    else log.error('checkpoint commit failed', meta);
    const failure = storageUnavailable(err, `checkpoint commit of run ${this.o.runId} failed`);
    if (failure !== err)
      this.o.alerts?.storageFailed(this.o.runId, this.last?.id ?? this.o.parent?.id ?? null, (err as Error).message);
    return failure;
  }
}
