// The background persist of a checkpoint in a thread of its own (node:worker_threads), so that it never waits for the
// training loop. On the training thread every continuation of a persist (each blob write, each fsync, the manifest)
// runs only when the loop yields between two steps: a large model's persist took several steps' time and, at a short
// checkpoint interval, held the next commit back. Here the thread hashes (sha256 on the blobs in place, no copy) and
// writes the blobs and the manifest through its own store of the same URL, on its own event loop.
//
// The blobs' buffers are moved to the thread (transferred, not copied) and moved back with the result, so the
// training thread's next snapshot copies into them as before; views of shared memory (arrays the optimizer lends a
// snapshot) are shared, and stay the training thread's own views. What "committed" means does not change: the result
// comes back once the manifest is durable. A store this thread cannot open again by URL (a store built in code)
// persists on the training thread instead (CheckpointManager.commit).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SHARE_ENV, Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { reviveError, sendError, type SentError } from './thread-errors';
import type { CommitInput, Manifest } from './types';

/** Where a thread opens the run's store again: its storage URL and the base directory of relative file paths. */
export interface StoreAddress {
  storage: string;
  baseDir?: string;
}

export interface ThreadCommit {
  store: StoreAddress;
  runId: string;
  concurrency: number;
  /** The signing keys (the first signs), handed to the thread in memory; null with signing off. */
  keys: Array<{ id: string; key: Uint8Array }> | null;
  input: CommitInput;
  previous?: Manifest;
  /** Called on this thread after the blobs are durable and before the manifest is written (a failpoint). */
  beforeManifest?: (step: number, runId: string) => void | Promise<void>;
}

/** Messages to the thread. */
export type ToThread =
  | {
      t: 'commit';
      id: number;
      job: Omit<ThreadCommit, 'beforeManifest'>;
      hook: boolean;
    }
  | { t: 'publish'; id: number; error?: SentError };

/** Messages from the thread. */
export type FromThread =
  | { t: 'before-manifest'; id: number; step: number }
  | { t: 'done'; id: number; manifest: Manifest; data: Uint8Array[] }
  | { t: 'failed'; id: number; error: SentError; data: Uint8Array[] };

interface Pending {
  job: ThreadCommit;
  resolve: (m: Manifest) => void;
  reject: (err: unknown) => void;
}

/**
 * The buffers worth moving rather than copying: a blob's own ArrayBuffer (the view covers all of it: nothing else can
 * be reading another part of it) of at least 64 KiB (a small buffer may be a slice of Node's shared pool, which must
 * never be moved; copying it costs nothing). Any other view is copied with its whole buffer.
 */
export function movable(data: Uint8Array[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const d of data) {
    const own = d.buffer instanceof ArrayBuffer && d.byteOffset === 0 && d.byteLength === d.buffer.byteLength;
    if (own && d.byteLength >= 64 << 10) out.add(d.buffer as ArrayBuffer);
  }
  return [...out];
}

/**
 * A full collection of the calling thread's heap, or null where it cannot be had: `gc` exposed to one new context only
 * (the flag is set back at once, so no other context gets it).
 */
export function exposedGc(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/** Sets the persist thread's priority (nice, 0-19; default 19, the lowest): see persist-thread-main.ts. */
export const PERSIST_NICE_ENV_VAR = 'DURABLE_TRAIN_PERSIST_NICE';

/** The persist thread's nice value: DURABLE_TRAIN_PERSIST_NICE, else 19. Throws naming the variable when it is bad. */
export function persistNice(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[PERSIST_NICE_ENV_VAR];
  if (raw === undefined || raw.trim() === '') return 19;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 19)
    throw new Error(
      `${PERSIST_NICE_ENV_VAR} must be an integer from 0 to 19 (the persist thread's nice), got ${JSON.stringify(raw)}`,
    );
  return n;
}

/** The process's persist thread, started at its first commit; it keeps the process alive only while it persists. */
class PersistThread {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  commit(job: ThreadCommit): Promise<Manifest> {
    const id = this.nextId++;
    const worker = this.started();
    return new Promise<Manifest>((resolve, reject) => {
      this.pending.set(id, { job, resolve, reject });
      worker.ref();
      const { beforeManifest, ...rest } = job;
      const msg: ToThread = { t: 'commit', id, job: rest, hook: !!beforeManifest };
      try {
        worker.postMessage(msg, movable(job.input.blobs.map((b) => b.data)));
      } catch (err) {
        this.settle(id);
        reject(err);
      }
    });
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(path.join(__dirname, 'persist-thread-main.js'), { env: SHARE_ENV, workerData: persistNice() });
    w.unref();
    w.on('message', (m: FromThread) => void this.onMessage(w, m));
    // The thread itself died (out of memory, a bug): every persist in it fails; the next commit starts a new one.
    const lost = (err: Error) => {
      if (this.worker === w) this.worker = null;
      for (const [id, p] of this.pending) {
        this.settle(id);
        p.reject(new Error(`checkpoint persist thread stopped: ${err.message}`, { cause: err }));
      }
    };
    w.on('error', lost);
    w.on('exit', (code) => lost(new Error(`it exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  private async onMessage(w: Worker, m: FromThread): Promise<void> {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.t === 'before-manifest') {
      let error: SentError | undefined;
      try {
        await p.job.beforeManifest?.(m.step, p.job.runId);
      } catch (err) {
        error = sendError(err);
      }
      w.postMessage({ t: 'publish', id: m.id, ...(error ? { error } : {}) } satisfies ToThread);
      return;
    }
    // The buffers come back: the snapshot's blobs read them again (the next snapshot copies into them). Shared memory
    // was never moved: its views stay the ones given (by which the optimizer knows its lent arrays again).
    m.data.forEach((d, i) => {
      const blob = p.job.input.blobs[i];
      if (!(blob.data.buffer instanceof SharedArrayBuffer)) blob.data = d;
    });
    this.settle(m.id);
    if (m.t === 'done') p.resolve(m.manifest);
    else p.reject(reviveError(m.error));
  }

  private settle(id: number): void {
    this.pending.delete(id);
    if (!this.pending.size) this.worker?.unref();
  }
}

let thread: PersistThread | null = null;

/** Persists a checkpoint in the process's persist thread; resolves with its manifest once it is durable. */
export function commitInThread(job: ThreadCommit): Promise<Manifest> {
  thread ??= new PersistThread();
  return thread.commit(job);
}
