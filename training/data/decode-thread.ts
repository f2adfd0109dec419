// The decoding of a large dataset file on a worker thread: parsing a file of hundreds of MiB takes seconds to
// minutes of CPU, and on the event loop it would stop the activity's heartbeats (Temporal would give the attempt up
// and retry it, forever). The file's bytes go to the thread and the decoded arrays come back, both moved, not copied.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { DatasetError } from './errors';
import type { LoadedData } from './types';

/** What the thread is given: the arguments of decodeFile, with each source reduced to its URL and field. */
export interface DecodeJob {
  spec: unknown;
  sources: Array<{ url: string; field: string }>;
  bytes: Uint8Array[];
  maxBytes: number;
  seed: number;
}

type Reply = { ok: LoadedData } | { error: { name: string; message: string; field?: string; detail?: string } };

/** The ArrayBuffers of typed arrays that own them whole (those can be moved; a view into a shared pool cannot). */
function movable(arrays: Array<ArrayBufferView | null | undefined>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) {
    if (a && a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength)
      out.add(a.buffer);
  }
  return [...out];
}

/** Runs `job` on a new worker thread; resolves with decodeFile's result or rejects with its error (DatasetError kept). */
export function decodeOnThread(job: DecodeJob): Promise<LoadedData> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(__filename, { workerData: job, transferList: movable(job.bytes) });
    let settled = false;
    worker.once('message', (r: Reply) => {
      settled = true;
      if ('ok' in r) resolve(r.ok);
      else if (r.error.name === 'DatasetError') reject(new DatasetError(r.error.field!, r.error.detail!));
      else reject(new Error(r.error.message));
      void worker.terminate();
    });
    worker.once('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`the dataset decoding thread exited with code ${code} before answering`));
    });
  });
}

if (!isMainThread && parentPort && (workerData as { bytes?: unknown } | null)?.bytes) {
  const port = parentPort;
  // Loaded here, not at the top: the main thread imports this module for decodeOnThread only.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { decodeFile } = require('./index') as typeof import('./index');
  const job = workerData as DecodeJob;
  try {
    const d = decodeFile(job.spec as Parameters<typeof decodeFile>[0], job.sources, job.bytes, job.maxBytes, job.seed);
    const arrays = [d.train.x, d.train.y, d.test.x, d.test.y, d.validation?.x, d.validation?.y];
    port.postMessage({ ok: d } satisfies Reply, movable(arrays));
  } catch (err) {
    const e = err as Error & { field?: string; detail?: string };
    port.postMessage({ error: { name: e.name, message: e.message, field: e.field, detail: e.detail } } satisfies Reply);
  }
}
