// Counters and gauges the activities update, rendered in the Prometheus text format by the worker.
// Plain in-process state: cheap to update on the hot path (a map lookup per commit, not per step).

type Labels = Record<string, string>;

interface Series {
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, { labels: Labels; value: number }>;
}

const key = (labels: Labels) => JSON.stringify(Object.entries(labels).sort());
const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export class MetricsRegistry {
  private readonly series = new Map<string, Series>();

  private get(name: string, type: Series['type'], help: string): Series {
    let s = this.series.get(name);
    if (!s) {
      s = { help, type, values: new Map() };
      this.series.set(name, s);
    }
    return s;
  }

  inc(name: string, help: string, labels: Labels, by = 1): void {
    const s = this.get(name, 'counter', help);
    const k = key(labels);
    const v = s.values.get(k) ?? { labels, value: 0 };
    v.value += by;
    s.values.set(k, v);
  }

  set(name: string, help: string, labels: Labels, value: number): void {
    this.get(name, 'gauge', help).values.set(key(labels), { labels, value });
  }

  render(): string {
    const out: string[] = [];
    for (const [name, s] of this.series) {
      out.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`);
      for (const { labels, value } of s.values.values()) {
        const l = Object.entries(labels)
          .map(([k, v]) => `${k}="${escape(v)}"`)
          .join(',');
        out.push(`${name}${l ? `{${l}}` : ''} ${value}`);
      }
    }
    return out.join('\n') + '\n';
  }
}

/** The metrics one worker process exports. */
export class TrainingMetrics {
  readonly registry = new MetricsRegistry();

  committed(run: string, step: number, seconds: number, bytes: number, reason: string): void {
    const r = this.registry;
    r.inc('durable_train_checkpoint_commits_total', 'Checkpoints committed.', { run, reason });
    r.inc('durable_train_checkpoint_commit_seconds_total', 'Time spent committing checkpoints.', { run }, seconds);
    r.set(
      'durable_train_last_checkpoint_timestamp_seconds',
      'Unix time of the newest committed checkpoint.',
      { run },
      Date.now() / 1000,
    );
    r.set('durable_train_last_checkpoint_step', 'Step of the newest committed checkpoint.', { run }, step);
    r.set('durable_train_last_checkpoint_bytes', 'Bytes referenced by the newest checkpoint.', { run }, bytes);
  }

  commitFailed(run: string): void {
    this.registry.inc('durable_train_checkpoint_failures_total', 'Checkpoint commits that failed.', { run });
  }

  recovered(run: string, kind: 'retry' | 'damaged-fallback'): void {
    this.registry.inc('durable_train_recoveries_total', 'Chunks resumed after a crash or past a damaged checkpoint.', {
      run,
      kind,
    });
  }

  progress(run: string, step: number, samplesPerSec: number): void {
    this.registry.set('durable_train_step', 'Current training step.', { run }, step);
    this.registry.set('durable_train_samples_per_second', 'Training throughput.', { run }, samplesPerSec);
  }
}
