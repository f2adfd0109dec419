// The persist thread (see persist-thread.ts): commits each checkpoint it is sent through a CheckpointManager of its
// own on a store opened from the same URL, and sends back the manifest with the blobs' buffers.
import { access, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { basename } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { assertFiniteBlobs } from '../training/errors';
import { FsCheckpointStore, openStore } from '../storage';
import type { CheckpointStore } from '../storage/interface';
import { CheckpointManager } from './manager';
import { exposedGc, movable, type FromThread, type ToThread } from './persist-thread';
import { CheckpointKeys } from './signing';
import { reviveError, sendError } from './thread-errors';

const port = parentPort!;

/**
 * The thread yields the CPU to training: it runs at the lowest priority (nice 19 unless DURABLE_TRAIN_PERSIST_NICE
 * says otherwise, given as workerData; Linux, its own thread id read from /proc/thread-self), so a persist hashes and
 * writes in the time training leaves (the Adam update's one thread, the loop between steps) instead of taking a core
 * from TensorFlow's threads: on the wide-mlp with a checkpoint every 2 s, 0.94 of the samples/s without checkpoints
 * became 0.95-0.96 (medians of 5 rounds; nice 10 gave 0.93). The persist has the slack: it may take the whole
 * interval, and where it has not ended by the next commit, training waits for it (back-pressure) and its thread
 * leaves the core to it. Other processes keeping every core busy at their own priority would leave it little: set
 * the variable lower (0: the process's priority) on a host shared that way. libuv's thread pool is started first,
 * at the process's priority (its threads would inherit this one's). Elsewhere (no /proc) the thread keeps the
 * process's priority.
 */
function yieldToTraining(nice: number): void {
  try {
    access('.', () => undefined); // starts the thread pool, if nothing has yet
    if (nice > 0) setPriority(Number(basename(readlinkSync('/proc/thread-self'))), nice);
  } catch {
    // not Linux, or not allowed: the process's priority
  }
}
yieldToTraining(typeof workerData === 'number' ? workerData : 19);

/**
 * A commit of lent arrays (views of an optimizer's shared memory) leaves objects here that keep that memory alive until
 * this thread collects; an idle thread may not for a long time, so a disposed trainer's memory (0.7 GB for the
 * wide-mlp) would stay. Null where `gc` cannot be had: the thread's own collections then free it, later.
 */
const collect = exposedGc();

const stores = new Map<string, CheckpointStore>();
/** Commits waiting for the training thread's beforeManifest hook to return. */
const published = new Map<number, (error?: unknown) => void>();

function storeOf(storage: string, baseDir?: string): CheckpointStore {
  const key = `${baseDir ?? ''}\n${storage}`;
  let s = stores.get(key);
  if (!s) {
    s = openStore(storage, baseDir);
    if (s instanceof FsCheckpointStore) s.useDirectWrites();
    stores.set(key, s);
  }
  return s;
}

/** Commits one checkpoint and sends back its result; true when it read shared memory (then collect, once it is out). */
async function commit(m: Extract<ToThread, { t: 'commit' }>): Promise<boolean> {
  const { job } = m;
  const data = job.input.blobs.map((b) => b.data);
  const transfer = movable(data);
  try {
    const lr = (job.input.state as { learningRate?: number } | null)?.learningRate ?? NaN;
    // No checkpoint holds a NaN or an infinity (the newest is always the last finite one): refused as NonFiniteError.
    assertFiniteBlobs(job.input.blobs, job.input.step, lr);
    const manager = new CheckpointManager(storeOf(job.store.storage, job.store.baseDir), job.runId, {
      concurrency: job.concurrency,
      ...(job.keys ? { keys: new CheckpointKeys(job.keys) } : {}),
      ...(m.hook
        ? {
            beforeManifest: (step: number) =>
              new Promise<void>((resolve, reject) => {
                published.set(m.id, (error) => (error ? reject(error) : resolve()));
                port.postMessage({ t: 'before-manifest', id: m.id, step } satisfies FromThread);
              }),
          }
        : {}),
    });
    const manifest = await manager.commit(job.input, { handOver: true, previous: job.previous });
    port.postMessage({ t: 'done', id: m.id, manifest, data } satisfies FromThread, transfer);
  } catch (err) {
    port.postMessage({ t: 'failed', id: m.id, error: sendError(err), data } satisfies FromThread, transfer);
  }
  return data.some((d) => d.buffer instanceof SharedArrayBuffer);
}

port.on('message', (m: ToThread) => {
  if (m.t === 'commit') void commit(m).then((shared) => shared && collect?.());
  else {
    const go = published.get(m.id);
    published.delete(m.id);
    go?.(m.error ? reviveError(m.error) : undefined);
  }
});
