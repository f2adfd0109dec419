// Storage checks the activities make before training.
import { CheckpointStoreError, type CheckpointStore } from '../checkpoint';
import { nonRetryable, storageUnavailable } from './failures';
import { FailureTypes } from './types';

/** Errors that retrying cannot heal: the run fails at once, naming the storage, instead of retrying for minutes. */
const PERMANENT = [
  'EACCES',
  'EROFS',
  'EPERM',
  'ENOTDIR',
  'AccessDenied',
  'NoSuchBucket',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
];

/** Writes and deletes a probe key under the run's prefix: unwritable storage fails the run before any training. */
export async function probeWritable(store: CheckpointStore, runId: string, url: string): Promise<void> {
  const probe = `${runId}/.write-probe`;
  try {
    await store.writeAtomic(probe, new TextEncoder().encode(new Date().toISOString()));
    await store.delete(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const msg = `checkpoint storage ${url} is not writable: ${(err as Error).message}`;
    if (PERMANENT.includes(code ?? '') || (err instanceof CheckpointStoreError && !err.details.retryable)) {
      throw nonRetryable(FailureTypes.StorageUnavailable, msg);
    }
    throw storageUnavailable(err, `checkpoint storage ${url} is not writable`);
  }
}
