// The alert sink: one JSON POST per alert to a webhook (DURABLE_TRAIN_ALERT_WEBHOOK), with a Slack-compatible `text`
// and structured fields. Duplicates (same kind, run and checkpoint) are suppressed until the condition clears.
// Delivery is retried with backoff, never throws and never blocks training: callers either await `send` in an
// activity of its own or fire `notify` and move on. A dead webhook shows in the metrics and the log.
// Knows nothing of Temporal.

import { ExponentialBackoff, handleWhen, noJitterGenerator, retry } from 'cockatiel';
import type { AlertKind } from './alert-kinds';
export type { AlertKind };

export interface Alert {
  kind: AlertKind;
  runId: string;
  checkpointId?: string | null;
  /** One line a person can act on. */
  message: string;
  details?: Record<string, string | number | boolean | null>;
}

export interface DeliveryResult {
  delivered: boolean;
  suppressed: boolean;
  /** Why not delivered: 'no-sink', or the last delivery error. */
  reason?: string;
  /** A failure that retrying cannot heal (a 4xx other than 408/429): the caller should not retry either. */
  permanent?: boolean;
}

/** What the sink counts; TrainingMetrics implements it. */
export interface AlertCounters {
  alertDelivered(kind: string): void;
  alertSuppressed(kind: string): void;
  alertNoSink(kind: string): void;
  alertFailed(kind: string): void;
}

export type AlertLog = (level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>) => void;

export interface AlertSinkOptions {
  /** The webhook URL; null or empty: no sink (alerts are logged and counted as no-sink). */
  url: string | null | undefined;
  /** Delivery attempts per alert (default 5). */
  attempts?: number;
  /** First backoff (default 500 ms), doubling, at most maxBackoffMs (default 10 s). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Deadline of one POST (default 5 s). */
  timeoutMs?: number;
  counters?: AlertCounters;
  log?: AlertLog;
}

const stderrLog: AlertLog = (level, message, fields) =>
  console.error(JSON.stringify({ level, message, ...fields, at: new Date().toISOString() }));

/** The URL of the webhook, validated: a clear error naming the variable for anything but http(s). */
export function webhookFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const raw = env.DURABLE_TRAIN_ALERT_WEBHOOK?.trim();
  if (!raw) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`DURABLE_TRAIN_ALERT_WEBHOOK=${raw}: not a URL (expected http(s)://host/path)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`DURABLE_TRAIN_ALERT_WEBHOOK: expected an http(s) URL, got ${url.protocol}`);
  }
  return url.toString();
}

/** A positive integer from the environment, or the default; a clear error naming the variable otherwise. */
export function positiveIntFromEnv(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${raw}: expected a whole number >= 1`);
  return n;
}

export const alertKey = (a: Pick<Alert, 'kind' | 'runId' | 'checkpointId'>) =>
  `${a.kind}\u0000${a.runId}\u0000${a.checkpointId ?? ''}`;

/** The body posted: Slack's `text`, plus the structured fields for any other receiver. */
export function alertPayload(a: Alert) {
  const where = a.checkpointId ? ` (checkpoint ${a.checkpointId})` : '';
  return {
    text: `:rotating_light: durable-train ${a.kind}: run ${a.runId}${where}: ${a.message}`,
    kind: a.kind,
    runId: a.runId,
    checkpointId: a.checkpointId ?? null,
    message: a.message,
    details: a.details ?? {},
    at: new Date().toISOString(),
  };
}

export class AlertSink {
  readonly url: string | null;
  /** Alerts delivered (or being delivered) whose condition has not cleared: the duplicates to suppress. */
  private readonly open = new Map<string, Promise<DeliveryResult>>();
  private readonly log: AlertLog;

  constructor(private readonly o: AlertSinkOptions) {
    this.url = o.url || null;
    this.log = o.log ?? stderrLog;
  }

  /** Delivers the alert unless a duplicate is open; resolves (never rejects) when delivered or given up. */
  send(alert: Alert, opts: { attempts?: number } = {}): Promise<DeliveryResult> {
    const key = alertKey(alert);
    const c = this.o.counters;
    if (this.open.has(key)) {
      c?.alertSuppressed(alert.kind);
      return Promise.resolve({ delivered: false, suppressed: true, reason: 'duplicate of an open alert' });
    }
    if (!this.url) {
      // Nobody to tell: log it once (until the condition clears), like a delivered alert.
      c?.alertNoSink(alert.kind);
      this.log('warn', `alert (no DURABLE_TRAIN_ALERT_WEBHOOK set): ${alert.message}`, fieldsOf(alert));
      const r: DeliveryResult = { delivered: false, suppressed: false, reason: 'no-sink' };
      this.open.set(key, Promise.resolve(r));
      return Promise.resolve(r);
    }
    const p = this.deliver(alert, opts.attempts ?? this.o.attempts ?? 5).then((r) => {
      // A failed delivery does not hold the key: the next occurrence tries again.
      if (!r.delivered && this.open.get(key) === p) this.open.delete(key);
      return r;
    });
    this.open.set(key, p);
    return p;
  }

  /** Fire and forget, for the training path: never awaited, never throws. */
  notify(alert: Alert): void {
    void this.send(alert).catch(() => undefined);
  }

  /** The condition cleared (a commit succeeded, a drill passed): the next occurrence alerts again. */
  clear(kind: AlertKind, runId: string, checkpointId?: string | null): void {
    if (checkpointId !== undefined) {
      this.open.delete(alertKey({ kind, runId, checkpointId }));
      return;
    }
    const prefix = `${kind}\u0000${runId}\u0000`;
    for (const k of [...this.open.keys()]) if (k.startsWith(prefix)) this.open.delete(k);
  }

  /** Whether an alert of this kind is open for the run (any checkpoint). */
  isOpen(kind: AlertKind, runId: string): boolean {
    const prefix = `${kind}\u0000${runId}\u0000`;
    return [...this.open.keys()].some((k) => k.startsWith(prefix));
  }

  private async deliver(alert: Alert, attempts: number): Promise<DeliveryResult> {
    const body = JSON.stringify(alertPayload(alert));
    // Retried with exponential backoff (no jitter: one sink per process), unless the webhook refused the alert itself
    // (a 4xx other than 408 and 429). The waits' timers never hold the process open.
    const policy = retry(
      handleWhen((e) => e instanceof DeliveryFailure && !e.permanent),
      {
        maxAttempts: Math.max(0, attempts - 1),
        backoff: new ExponentialBackoff({
          generator: noJitterGenerator,
          initialDelay: this.o.backoffMs ?? 500,
          maxDelay: this.o.maxBackoffMs ?? 10_000,
        }),
      },
    ).dangerouslyUnref();
    try {
      await policy.execute(({ attempt }) => this.post(alert, body, attempt + 1, attempts));
      this.o.counters?.alertDelivered(alert.kind);
      this.log('info', `alert delivered: ${alert.message}`, fieldsOf(alert));
      return { delivered: true, suppressed: false };
    } catch (err) {
      const { reason, permanent } = err as DeliveryFailure;
      return permanent
        ? { delivered: false, suppressed: false, reason, permanent }
        : { delivered: false, suppressed: false, reason };
    }
  }

  /** One delivery attempt: resolves when the webhook took the alert, else counts, logs and throws a DeliveryFailure. */
  private async post(alert: Alert, body: string, attempt: number, attempts: number): Promise<void> {
    let failure: DeliveryFailure;
    try {
      const res = await fetch(this.url!, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return;
      const permanent = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
      failure = new DeliveryFailure(`webhook answered HTTP ${res.status}`, permanent);
    } catch (err) {
      failure = new DeliveryFailure(`webhook unreachable: ${(err as Error).message}`, false);
    }
    this.o.counters?.alertFailed(alert.kind);
    this.log('error', `alert delivery failed (attempt ${attempt}/${attempts}): ${failure.reason}`, {
      ...fieldsOf(alert),
      webhook: redact(this.url!),
    });
    throw failure;
  }
}

/** A failed delivery attempt; `permanent` when the webhook refused the alert itself (no retry can help). */
class DeliveryFailure extends Error {
  constructor(
    readonly reason: string,
    readonly permanent: boolean,
  ) {
    super(reason);
  }
}

const fieldsOf = (a: Alert) => ({ kind: a.kind, runId: a.runId, checkpointId: a.checkpointId ?? null });

/** The webhook's origin only: Slack-style URLs carry their secret in the path. */
function redact(url: string): string {
  try {
    return new URL(url).origin + '/…';
  } catch {
    return '(webhook)';
  }
}
