// Opening stores once per worker, and the storage checks the activities make before training.
import { openStore, StorageUnavailableError, type CheckpointStore } from '../checkpoint';
import { nonRetryable, storageUnavailable } from './failures';
import { FailureTypes } from './types';

/** Writes and deletes a probe key under the run's prefix: unwritable storage fails the run before any training. */
export async function probeWritable(store: CheckpointStore, runId: string, url: string): Promise<void> {
  const probe = `${runId}/.write-probe`;
  try {
    await store.writeAtomic(probe, new TextEncoder().encode(new Date().toISOString()));
    await store.delete(probe);
  } catch (err) {
    // What retrying cannot heal (permissions, read-only, bad credentials, no bucket) fails the run at once, naming
    // the storage, instead of retrying for minutes; a storage that may come back is retried.
    // At the start of a run, a path that runs through a regular file (ENOTDIR) is a wrong storage URL, not an outage.
    if (err instanceof StorageUnavailableError && (!err.retryable || err.storageCode === 'ENOTDIR')) {
      throw nonRetryable(FailureTypes.StorageUnavailable, `checkpoint storage ${url} is not writable: ${err.message}`);
    }
    throw storageUnavailable(err, `checkpoint storage ${url} is not writable`);
  }
}

/** One store per storage URL for the worker's lifetime (clients and connections reused); relative file:// paths
 *  resolve against `baseDir` (default: the worker's cwd). */
export function storeCache(baseDir?: string): (storage: string) => CheckpointStore {
  const stores = new Map<string, CheckpointStore>();
  return (storage) => {
    let store = stores.get(storage);
    if (!store) {
      store = openStore(storage, baseDir ?? process.cwd());
      stores.set(storage, store);
    }
    return store;
  };
}
