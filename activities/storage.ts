// Storage checks the activities make before training.
import { StorageUnavailableError, type CheckpointStore } from '../checkpoint';
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
    if (err instanceof StorageUnavailableError && !err.retryable) {
      throw nonRetryable(FailureTypes.StorageUnavailable, `checkpoint storage ${url} is not writable: ${err.message}`);
    }
    throw storageUnavailable(err, `checkpoint storage ${url} is not writable`);
  }
}
