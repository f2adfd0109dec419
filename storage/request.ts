// One logical request to an object store: each attempt under a deadline (a base plus an allowance per byte moved),
// retried with jittered backoff while the failure may heal, and classified into the store contract's errors. Every
// cloud backend (s3.ts, gcs.ts, azure.ts) runs its requests through here with the SDK's own retries off, so a
// stalled or unreachable endpoint turns into an error within a known time, never a hang that would stall a training
// activity past its heartbeat timeout.
import { ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import { DurableTrainError } from '../spec/errors';
import { CheckpointNotFoundError, StorageUnavailableError } from './interface';

export interface RetryPolicy {
  /** Deadline of one attempt before its payload allowance. */
  timeoutMs: number;
  /** Extra deadline per byte moved, as a minimum throughput (bytes/s). */
  bytesPerSecond: number;
  /** Attempts per request, including the first. */
  maxAttempts: number;
  /** First backoff delay; doubles per attempt, with jitter. */
  baseDelayMs: number;
}

/** Options every cloud store takes for its RetryPolicy. */
export interface RetryOptions {
  /** Deadline of one attempt before its payload allowance; also the connect and socket-idle timeout. Default 30 s. */
  requestTimeoutMs?: number;
  /** Extra deadline per byte moved, as a minimum throughput (bytes/s). Default 1 MiB/s. */
  minBytesPerSecond?: number;
  /** Attempts per request, including the first. Default 4. */
  maxAttempts?: number;
  /** First backoff delay; doubles per attempt, with jitter. Default 200 ms. */
  retryBaseDelayMs?: number;
}

export function retryPolicy(opts: RetryOptions): RetryPolicy {
  return {
    timeoutMs: opts.requestTimeoutMs ?? 30_000,
    bytesPerSecond: opts.minBytesPerSecond ?? 1 << 20,
    maxAttempts: Math.max(1, Math.floor(opts.maxAttempts ?? 4)),
    baseDelayMs: opts.retryBaseDelayMs ?? 200,
  };
}

/** How a backend reads one failed attempt. */
export interface Verdict {
  /** The object (not the bucket) does not exist: CheckpointNotFoundError, never retried. */
  notFound?: boolean;
  retryable: boolean;
  code?: string;
  status?: number;
}

export interface Attempt {
  signal: AbortSignal;
  /** Grants more time to this attempt, e.g. once a download's length is known. */
  extend(ms: number): void;
}

export interface RequestInfo {
  /** 'GET' | 'PUT' | 'HEAD' | 'LIST' | 'DELETE' */
  op: string;
  /** The store key, for errors. */
  key: string;
  /** Bytes this request moves, known in advance (uploads): widens the deadline. */
  bytes: number;
  /** The backend and where, for messages: 's3', 's3://bucket/prefix'. */
  backend: string;
  url: string;
}

/** Errno codes of a network that may come back. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** A failure of the connection itself (reset, refused, cut off): worth another attempt. */
export function isNetworkFailure(err: unknown): boolean {
  const e = err as { code?: unknown; name?: string; message?: string; cause?: unknown };
  if (typeof e?.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  if (/socket hang up|ECONNRESET|ECONNREFUSED|network|aborted|terminated|premature close/i.test(e?.message ?? ''))
    return true;
  return e?.cause !== undefined && e.cause !== err && isNetworkFailure(e.cause);
}

/** An HTTP status worth retrying: any 5xx except 501 (the server lacks the feature: a retry gets the same), 408 and 429. */
export const retryableStatus = (status: number | undefined): boolean =>
  status !== undefined && ((status >= 500 && status !== 501) || status === 408 || status === 429);

export class AttemptTimeoutError extends DurableTrainError {
  readonly code = 'timeout' as const;

  override readonly name = 'TimeoutError';
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/**
 * Runs one logical request: each attempt under a deadline, retried with backoff when `classify` says it can help.
 * Throws CheckpointNotFoundError or StorageUnavailableError (or what `fn` throws of those itself).
 */
export async function runRequest<T>(
  policy: RetryPolicy,
  req: RequestInfo,
  classify: (err: unknown, op: string) => Verdict,
  fn: (a: Attempt) => Promise<T>,
): Promise<T> {
  let attempts = 0;
  let verdict: Verdict = { retryable: false };
  // The store contract's own errors pass through; anything else gets its verdict, and only a retryable one is retried.
  const retrying = retry(
    handleWhen((err) => {
      if (err instanceof CheckpointNotFoundError || err instanceof StorageUnavailableError) return false;
      verdict = err instanceof AttemptTimeoutError ? { retryable: true, code: 'TimeoutError' } : classify(err, req.op);
      return verdict.retryable && !verdict.notFound;
    }),
    { maxAttempts: policy.maxAttempts - 1, backoff: jitteredBackoff(policy) },
  );
  try {
    return await retrying.execute(() => {
      attempts++;
      return withDeadline(policy.timeoutMs + (req.bytes / policy.bytesPerSecond) * 1000, fn);
    });
  } catch (err) {
    if (err instanceof CheckpointNotFoundError || err instanceof StorageUnavailableError) throw err;
    const v = verdict;
    if (v.notFound) throw new CheckpointNotFoundError(req.key, `not found: ${req.url}/${req.key}`);
    const what = `${v.code ?? 'Error'}${v.status ? ` (HTTP ${v.status})` : ''}`;
    throw new StorageUnavailableError(
      `${req.backend} ${req.op} ${req.url}/${req.key} failed${v.retryable ? ` after ${attempts} attempts` : ''}: ${what}: ${(err as Error)?.message ?? String(err)}`,
      { op: req.op, key: req.key, attempts, retryable: v.retryable, code: v.code, status: v.status },
      { cause: err },
    );
  }
}

/** The wait after failed attempt `attempt` (1-based): the base delay doubling per attempt, drawn from [0.5, 1.5) of it. */
function backoffDelay(policy: RetryPolicy, attempt: number): number {
  return policy.baseDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random());
}

/** backoffDelay as cockatiel's backoff. */
function jitteredBackoff(policy: RetryPolicy): ExponentialBackoff<number> {
  return new ExponentialBackoff({ generator: (n = 0) => [backoffDelay(policy, n + 1), n + 1] });
}

/** Resolves with fn's result or rejects at the deadline, even if the SDK ignores the abort signal. */
function withDeadline<T>(ms: number, fn: (a: Attempt) => Promise<T>): Promise<T> {
  const ctl = new AbortController();
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout;
    let deadline = ms;
    const arm = (wait: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const err = new AttemptTimeoutError(Math.round(deadline));
        ctl.abort(err);
        reject(err);
      }, wait);
    };
    const started = Date.now();
    arm(ms);
    const extend = (more: number) => {
      deadline += more;
      arm(Math.max(0, started + deadline - Date.now()));
    };
    fn({ signal: ctl.signal, extend }).then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(ctl.signal.aborted && ctl.signal.reason instanceof AttemptTimeoutError ? ctl.signal.reason : e);
      },
    );
  });
}

/** Reads a whole body stream under an attempt: aborting the attempt destroys the stream. */
export async function readBody(
  body: AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => void },
  signal: AbortSignal,
  expected?: number,
): Promise<Uint8Array> {
  const onAbort = () => body.destroy?.(signal.reason as Error);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const parts: Uint8Array[] = [];
    let n = 0;
    for await (const c of body) {
      parts.push(c);
      n += c.byteLength;
    }
    if (expected !== undefined && n !== expected) {
      throw Object.assign(new Error(`short read: ${n} of ${expected} bytes`), { code: 'ECONNRESET' });
    }
    const out = new Uint8Array(n);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.byteLength;
    }
    return out;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** A response body being read: destroying it ends the connection. */
export type Body = AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => void };

/**
 * Streams an object of `size` bytes in the chunks the connection delivers, without holding more than one chunk.
 * `open(offset)` starts a body at byte `offset`, pinned by the backend to the version it first saw (If-Match, a
 * generation), so a resumed read never mixes two versions. Each attempt has `policy.timeoutMs` to deliver its
 * headers and then each chunk (an idle deadline: the consumer's time between chunks is not counted). A body that
 * fails, stalls or ends short is reopened where it stopped, with backoff; `maxAttempts` counts attempts in a row
 * that made no progress. Errors are the store contract's: CheckpointNotFoundError (gone before or while being read),
 * StorageUnavailableError (retryable when waiting may help; code ObjectChanged when the pinned version was replaced).
 */
export async function* streamRequest(
  policy: RetryPolicy,
  req: RequestInfo,
  classify: (err: unknown, op: string) => Verdict,
  size: number,
  open: (offset: number, signal: AbortSignal) => Promise<Body>,
): AsyncGenerator<Uint8Array> {
  let offset = 0;
  for (let attempt = 1; offset < size; attempt++) {
    const ctl = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => ctl.abort(new AttemptTimeoutError(policy.timeoutMs)), policy.timeoutMs);
    };
    let body: Body | undefined;
    const onAbort = () => body?.destroy?.(ctl.signal.reason as Error);
    ctl.signal.addEventListener('abort', onAbort, { once: true });
    const from = offset;
    try {
      arm();
      body = await untilAborted(open(offset, ctl.signal), ctl.signal);
      for await (const chunk of body) {
        clearTimeout(timer);
        if (offset + chunk.byteLength > size) throw changed(req, `it is longer than the ${size} bytes it had`);
        offset += chunk.byteLength;
        yield chunk;
        arm();
      }
      if (offset < size) {
        throw Object.assign(new Error(`short read: ${offset} of ${size} bytes`), { code: 'ECONNRESET' });
      }
    } catch (err) {
      if (err instanceof CheckpointNotFoundError || err instanceof StorageUnavailableError) throw err;
      const v: Verdict = ctl.signal.aborted ? { retryable: true, code: 'TimeoutError' } : classify(err, req.op);
      // The version pinned: gone after bytes of it were read (a generation no longer there), or replaced (412).
      if (v.notFound && offset > 0) throw changed(req, `it was deleted or replaced after ${offset} of ${size} bytes`);
      if (v.notFound) throw new CheckpointNotFoundError(req.key, `not found: ${req.url}/${req.key}`);
      if (v.status === 412) throw changed(req, `it was replaced after ${offset} of ${size} bytes`);
      if (offset > from) attempt = 1; // progress: the next attempt is a fresh one
      if (!v.retryable || attempt >= policy.maxAttempts) {
        const what = `${v.code ?? 'Error'}${v.status ? ` (HTTP ${v.status})` : ''}`;
        throw new StorageUnavailableError(
          `${req.backend} ${req.op} ${req.url}/${req.key} failed at byte ${offset} of ${size}${v.retryable ? ` after ${attempt} attempts` : ''}: ${what}: ${(err as Error)?.message ?? String(err)}`,
          { op: req.op, key: req.key, attempts: attempt, retryable: v.retryable, code: v.code, status: v.status },
          { cause: err },
        );
      }
      await new Promise((r) => setTimeout(r, backoffDelay(policy, attempt)));
    } finally {
      clearTimeout(timer);
      ctl.signal.removeEventListener('abort', onAbort);
      body?.destroy?.();
    }
  }
}

function changed(req: RequestInfo, how: string): StorageUnavailableError {
  return new StorageUnavailableError(`${req.backend} ${req.op} ${req.url}/${req.key}: ${how} while being read`, {
    op: req.op,
    key: req.key,
    attempts: 1,
    retryable: false,
    code: 'ObjectChanged',
  });
}

/** `p`, or the abort's reason if the signal fires first (an SDK may not honour it); a late body is destroyed. */
function untilAborted(p: Promise<Body>, signal: AbortSignal): Promise<Body> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (b) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) b.destroy?.();
        else resolve(b);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** A positive number from the environment, or undefined when unset; throws naming the variable otherwise. */
export function positiveEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${v} is not a positive number`);
  return n;
}
