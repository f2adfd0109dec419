// Where a retried chunk starts (activities/chunk/start.ts) when the storage fails while it looks for what the failed
// attempt committed: the failure is the activity's storage failure (type StorageUnavailable, retried), never an
// untyped error and never a damaged checkpoint to skip.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { newestDescendant } from '../../activities/chunk/start';
import { FailureTypes } from '../../activities/types';
import {
  CheckpointManager,
  FsCheckpointStore,
  StorageUnavailableError,
  type CommitInput,
  type Manifest,
} from '../../checkpoint';

const RUN = 'run-retry';

function input(step: number, parent: Manifest | null): CommitInput {
  return {
    step,
    epoch: 0,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
    parent: parent ? { runId: parent.runId, id: parent.id } : null,
    blobs: [{ name: 'w', dtype: 'float32', shape: [2], data: new Uint8Array(new Float32Array([step, 1]).buffer) }],
    state: { step },
    metrics: { loss: 1 },
    fingerprints: { spec: 's' },
    backend: { name: 'cpu', version: '1' },
  };
}

describe('a retried chunk looking for the failed attempt’s commits', function () {
  it('a storage failure while verifying a candidate is a StorageUnavailable failure, not a raw error', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-chunk-start-'));
    try {
      const store = new FsCheckpointStore(dir);
      const first = await new CheckpointManager(store, RUN).commit(input(10, null));
      await new CheckpointManager(store, RUN).commit(input(20, first));
      // Manifests and listings answer; reading a blob fails as an outage does.
      let blobReads = 0;
      const outage = (key: string) => {
        if (!key.includes('/blobs/')) return false;
        blobReads += 1;
        return true;
      };
      const fail = (key: string) =>
        Promise.reject(
          new StorageUnavailableError(`injected outage reading ${key}`, {
            op: 'GET',
            key,
            attempts: 1,
            retryable: true,
          }),
        );
      const flaky = Object.assign(Object.create(store) as FsCheckpointStore, {
        read: (key: string) => (outage(key) ? fail(key) : store.read(key)),
        readHashing: (key: string) => (outage(key) ? fail(key) : store.readHashing(key)),
      });
      const manager = new CheckpointManager(flaky, RUN);
      await assert.rejects(newestDescendant(manager, RUN, { runId: RUN, id: first.id }), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure, `an ApplicationFailure, got ${String(err)}`);
        assert.equal(err.type, FailureTypes.StorageUnavailable);
        assert.equal(err.nonRetryable, false);
        assert.match(err.message, /storage unavailable: injected outage/);
        return true;
      });
      assert.ok(blobReads >= 1, 'the candidate was verified');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
