// The metrics one worker process exports, on a prom-client registry (Prometheus text format, served by the worker).
// Knows nothing of Temporal: the activities and the alert sink call these methods. Cheap on the hot path: a label
// lookup per commit, one gauge set per step.
// Label sets stay bounded: counters and histograms are per worker (labels are small enums: reason, kind, outcome);
// only the gauges that describe a run being trained carry `run`, and they are removed when the run ends here (or
// after an hour without activity here: a run that moved to another worker or was stopped never says goodbye).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Reasons a checkpoint commit failed, as a bounded label: a storage error code, or 'other'. */
export function failureReason(err: unknown): string {
  // A storage failure's own code (ENOSPC, AccessDenied), else an error's `code` (errno, or a durable-train kind).
  const e = err as { storageCode?: unknown; code?: unknown } | null;
  const code = e?.storageCode ?? e?.code;
  return typeof code === 'string' && /^[A-Za-z0-9_.-]{1,40}$/.test(code) ? code : 'other';
}

const PER_RUN_TTL_MS = 60 * 60 * 1000;

export class TrainingMetrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;

  private readonly commits = new Counter({
    name: 'durable_train_checkpoint_commits_total',
    help: 'Checkpoints committed, by reason (chunk-end, time, pause, stop, cancel, worker-shutdown).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly commitSeconds = new Histogram({
    name: 'durable_train_checkpoint_commit_seconds',
    help: 'Time to commit one checkpoint (snapshot, blobs, manifest).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly stallSeconds = new Histogram({
    name: 'durable_train_checkpoint_stall_seconds',
    help: 'Training time one commit took: its snapshot, plus any wait for the previous persist (back-pressure).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly persistSeconds = new Histogram({
    name: 'durable_train_checkpoint_persist_seconds',
    help: 'Time one commit persisted in the background while training went on (hash, blobs, manifest durable).',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  private readonly restoreSeconds = new Histogram({
    name: 'durable_train_checkpoint_restore_seconds',
    help: 'Time to restore a trainer from a checkpoint (read, verify every hash, rebuild).',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly bytesWritten = new Counter({
    name: 'durable_train_checkpoint_bytes_total',
    help: 'Bytes referenced by committed checkpoints (blobs shared with the parent count again).',
    registers: [this.registry],
  });
  private readonly newBytes = new Counter({
    name: 'durable_train_checkpoint_new_bytes_total',
    help:
      'Bytes committed checkpoints stored that their parent checkpoint did not reference (changed blobs, row ' +
      'patches): what storage grows by before retention.',
    registers: [this.registry],
  });
  private readonly failures = new Counter({
    name: 'durable_train_checkpoint_failures_total',
    help: 'Checkpoint commits that failed, by reason (storage error code, or other).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly recoveries = new Counter({
    name: 'durable_train_recoveries_total',
    help: 'Chunks resumed after a crash (retry) or past a damaged checkpoint (damaged-fallback).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  private readonly lastTimestamp = new Gauge({
    name: 'durable_train_last_checkpoint_timestamp_seconds',
    help: 'Unix time of the newest checkpoint this worker committed for a run it is training.',
    labelNames: ['run'] as const,
    registers: [this.registry],
  });
  private readonly lastStep = new Gauge({
    name: 'durable_train_last_checkpoint_step',
    help: 'Step of the newest committed checkpoint.',
    labelNames: ['run'] as const,
    registers: [this.registry],
  });
  private readonly lastBytes = new Gauge({
    name: 'durable_train_last_checkpoint_bytes',
    help: 'Bytes referenced by the newest checkpoint.',
    labelNames: ['run'] as const,
    registers: [this.registry],
  });
  private readonly step = new Gauge({
    name: 'durable_train_step',
    help: 'Current training step.',
    labelNames: ['run'] as const,
    registers: [this.registry],
  });
  private readonly samplesPerSec = new Gauge({
    name: 'durable_train_samples_per_second',
    help: 'Training throughput.',
    labelNames: ['run'] as const,
    registers: [this.registry],
  });
  private readonly drills = new Counter({
    name: 'durable_train_drills_total',
    help: 'Recovery drills run, by outcome (passed, failed).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly lastDrill = new Gauge({
    name: 'durable_train_last_successful_drill_timestamp_seconds',
    help: 'Unix time of the last drill that verified its checkpoint bit for bit (absent until one passes).',
    registers: [this.registry],
  });
  private readonly alerts = new Counter({
    name: 'durable_train_alerts_total',
    help: 'Alerts, by kind and outcome (delivered, suppressed duplicate, no-sink).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly alertFailures = new Counter({
    name: 'durable_train_alert_delivery_failures_total',
    help: 'Failed webhook deliveries (each failed attempt), by kind: a dead webhook shows here.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  /** When each run with gauges here was last active here. */
  private readonly runs = new Map<string, number>();
  /** Runs with a chunk attempt running here now: never expired, however long a stalled commit takes. */
  private readonly inFlight = new Set<string>();
  private readonly perRun: Array<Gauge<'run'>> = [
    this.lastTimestamp,
    this.lastStep,
    this.lastBytes,
    this.step,
    this.samplesPerSec,
  ];
  private readonly runTtlMs: number;

  constructor(opts: { defaultMetrics?: boolean; runTtlMs?: number } = {}) {
    // Process (CPU, memory, fds, heap) and event-loop lag metrics, prefixed like ours.
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'durable_train_' });
    this.runTtlMs = opts.runTtlMs ?? PER_RUN_TTL_MS;
  }

  /** Notes that the run is active here now; on a new run, drops the series of runs idle for longer than the TTL. */
  private seen(run: string): void {
    const now = Date.now();
    if (!this.runs.has(run)) {
      for (const [other, at] of this.runs) {
        if (now - at > this.runTtlMs && !this.inFlight.has(other)) this.runEnded(other);
      }
    }
    this.runs.set(run, now);
  }

  /**
   * `times` splits a two-phase commit: the training stall (the snapshot, plus `waitSeconds` spent waiting for the
   * previous persist) and the background persist.
   */
  committed(
    run: string,
    step: number,
    seconds: number,
    bytes: number,
    reason: string,
    times?: { stallSeconds: number; waitSeconds?: number; persistSeconds: number },
    /** Bytes this checkpoint stored that its parent did not reference (unknown: not counted). */
    newBytes?: number,
  ): void {
    this.seen(run);
    this.commits.inc({ reason });
    this.commitSeconds.observe(seconds);
    if (times) {
      this.stallSeconds.observe(times.stallSeconds);
      this.persistSeconds.observe(times.persistSeconds);
    }
    this.bytesWritten.inc(bytes);
    if (newBytes !== undefined) this.newBytes.inc(newBytes);
    this.lastTimestamp.set({ run }, Date.now() / 1000);
    this.lastStep.set({ run }, step);
    this.lastBytes.set({ run }, bytes);
  }

  commitFailed(run: string, reason = 'other'): void {
    this.seen(run);
    this.failures.inc({ reason });
  }

  restored(run: string, seconds: number): void {
    this.seen(run);
    this.restoreSeconds.observe(seconds);
  }

  recovered(run: string, kind: 'retry' | 'damaged-fallback'): void {
    this.seen(run);
    this.recoveries.inc({ kind });
  }

  progress(run: string, step: number, samplesPerSec: number): void {
    this.seen(run);
    this.step.set({ run }, step);
    this.samplesPerSec.set({ run }, samplesPerSec);
  }

  /** A chunk attempt of the run starts (true) or ends (false) on this worker. */
  chunkInFlight(run: string, inFlight: boolean): void {
    if (inFlight) {
      this.inFlight.add(run);
      this.seen(run);
    } else this.inFlight.delete(run);
  }

  /** The run ended (trained to the end, paused, stopped, cancelled) or left this worker: its series go away. */
  runEnded(run: string): void {
    this.runs.delete(run);
    for (const g of this.perRun) g.remove({ run });
  }

  /** Runs with series on this worker (for tests and the stale watchdog). */
  activeRuns(): string[] {
    return [...this.runs.keys()];
  }

  /** A recovery drill verified its checkpoint bit for bit. For the drill activity. */
  drillPassed(): void {
    this.drills.inc({ outcome: 'passed' });
    this.lastDrill.set(Date.now() / 1000);
  }

  /** A recovery drill found a difference or could not run. For the drill activity. */
  drillFailed(): void {
    this.drills.inc({ outcome: 'failed' });
  }

  alertDelivered(kind: string): void {
    this.alerts.inc({ kind, outcome: 'delivered' });
  }
  alertSuppressed(kind: string): void {
    this.alerts.inc({ kind, outcome: 'suppressed' });
  }
  alertNoSink(kind: string): void {
    this.alerts.inc({ kind, outcome: 'no-sink' });
  }
  alertFailed(kind: string): void {
    this.alertFailures.inc({ kind });
  }

  /** The scrape: Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
