// The alerts the chunk activities raise on the worker, through the sink without awaiting it (training never waits for a
// webhook): 'save-failing' after N storage failures of a run in a row, 'checkpoint-stale' when a run this worker is
// training has committed nothing for too long, 'damaged-fallback' when a chunk starts past a damaged checkpoint.
// Counted per run in this worker process; a retry that lands on another worker starts that worker's count.
import type { AlertSink } from '../../telemetry/alerts';

export interface RunAlertOptions {
  /** Storage failures in a row (commits, or the reads a retry needs before it can commit) before alerting. */
  saveFailures: number;
  /** Seconds without a commit, for a run training here, before alerting. */
  staleSeconds: number;
}

interface RunWatch {
  /** Storage failures since the last successful commit. */
  failures: number;
  /** When this worker last committed a checkpoint of the run (or first took a chunk of it). */
  lastCommitAt: number;
  /** The newest checkpoint of the run this worker knows. */
  checkpointId: string | null;
  /** A chunk of the run is training here now. */
  inFlight: boolean;
  /** When a chunk attempt of the run last started, failed or ran here. */
  seenAt: number;
  /** A stale alert went out since the last commit (the sink would suppress another; this saves it the work). */
  staleAlerted: boolean;
}

export class RunAlerts {
  private readonly runs = new Map<string, RunWatch>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly sink: AlertSink,
    readonly o: RunAlertOptions,
    private readonly now: () => number = Date.now,
  ) {}

  private watch(runId: string, checkpointId: string | null): RunWatch {
    let w = this.runs.get(runId);
    if (!w) {
      w = {
        failures: 0,
        lastCommitAt: this.now(),
        checkpointId,
        inFlight: false,
        seenAt: this.now(),
        staleAlerted: false,
      };
      this.runs.set(runId, w);
    }
    return w;
  }

  /** A chunk attempt starts training the run here. */
  chunkStarted(runId: string, from: string | null): void {
    const w = this.watch(runId, from);
    w.inFlight = true;
    w.seenAt = this.now();
    this.startTimer();
    this.checkStale();
  }

  /** The chunk attempt ended: `runEnded` when the run will not train on (finished, paused, stopped, cancelled). */
  chunkEnded(runId: string, runEnded: boolean): void {
    const w = this.runs.get(runId);
    if (!w) return;
    w.inFlight = false;
    w.seenAt = this.now();
    if (runEnded) {
      this.runs.delete(runId);
      this.sink.clear('checkpoint-stale', runId);
      this.sink.clear('save-failing', runId);
    }
    if (!this.runs.size) this.stopTimer();
  }

  committed(runId: string, checkpointId: string): void {
    const w = this.watch(runId, checkpointId);
    w.failures = 0;
    w.lastCommitAt = this.now();
    w.checkpointId = checkpointId;
    w.seenAt = this.now();
    w.staleAlerted = false;
    // The conditions cleared: a later outage or stall alerts again.
    this.sink.clear('save-failing', runId);
    this.sink.clear('checkpoint-stale', runId);
  }

  /** A storage failure on the way to the run's next commit; the N-th in a row alerts (once, until a commit). */
  storageFailed(runId: string, checkpointId: string | null, error: string): void {
    const w = this.watch(runId, checkpointId);
    w.failures += 1;
    w.inFlight = false;
    w.seenAt = this.now();
    if (w.failures < this.o.saveFailures) return;
    this.sink.notify({
      kind: 'save-failing',
      runId,
      checkpointId: w.checkpointId,
      message:
        `checkpoint saves of run ${runId} failed ${w.failures} times in a row (storage): ${error}. ` +
        `Training is retried with backoff and resumes from checkpoint ${w.checkpointId ?? '(none yet)'} when storage returns.`,
      details: { failures: w.failures, error },
    });
  }

  damagedFallback(runId: string, damaged: string, fallback: string, reason: string): void {
    this.sink.notify({
      kind: 'damaged-fallback',
      runId,
      checkpointId: damaged,
      message: `checkpoint ${damaged} of run ${runId} is damaged; the run fell back to ${fallback}: ${reason}`,
      details: { fallback, reason },
    });
  }

  /** Alerts for runs training here (or retried here within the threshold) whose newest commit is too old. */
  checkStale(): void {
    const limit = this.o.staleSeconds * 1000;
    const now = this.now();
    for (const [runId, w] of this.runs) {
      if (!w.inFlight && now - w.seenAt > limit) {
        // Not training here any more (moved to another worker, or the run is idle): stop watching it.
        this.runs.delete(runId);
        continue;
      }
      const age = now - w.lastCommitAt;
      if (age <= limit || w.staleAlerted) continue;
      w.staleAlerted = true;
      this.sink.notify({
        kind: 'checkpoint-stale',
        runId,
        checkpointId: w.checkpointId,
        message:
          `run ${runId} has committed no checkpoint for ${Math.round(age / 1000)}s (threshold ${this.o.staleSeconds}s); ` +
          `newest known: ${w.checkpointId ?? '(none)'}`,
        details: { ageSeconds: Math.round(age / 1000), thresholdSeconds: this.o.staleSeconds },
      });
    }
    if (!this.runs.size) this.stopTimer();
  }

  private startTimer(): void {
    if (this.timer) return;
    const every = Math.max(1000, Math.min(30_000, (this.o.staleSeconds * 1000) / 4));
    this.timer = setInterval(() => this.checkStale(), every);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
