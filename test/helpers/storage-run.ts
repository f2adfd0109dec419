// The exact-resume case on one storage backend, shared by the S3 and cloud run tests: a run with checkpoints on the
// backend is SIGKILLed mid-chunk, a byte of a model blob of its newest checkpoint is flipped on the server, and a new
// worker must detect the damage, fall back, and end with the weights of the same run on local disk.
import * as assert from 'node:assert/strict';
import { openStore } from '../../storage';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, waitFor, writeSpec } from './cluster';
import { runningChunk, TEST_HEARTBEAT_S, type ClusterFixture } from './fixtures';

export interface RunBackend {
  name: string;
  /** The storage URL the run checkpoints to (a prefix of its own). */
  storage: string;
  /** What the CLI and the workers need to reach it. */
  env: NodeJS.ProcessEnv;
}

export const storageRunSpec = (storage: string) => ({
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 4800, testLimit: 300, validationFraction: 0 },
  epochs: 1,
  batchSize: 16,
  chunkSteps: 100,
  seed: 77,
  dropout: 0.1,
  augment: { shift: 1 },
  optimizer: { name: 'adam', learningRate: 0.001 },
  checkpoint: { storage, everySeconds: 1, keepLatest: 3 },
  heartbeatTimeoutSeconds: TEST_HEARTBEAT_S,
});

/** The uninterrupted run on local disk every backend's run must match. */
export async function localReference(fx: ClusterFixture): Promise<string> {
  const w = await fx.worker();
  const file = writeSpec(fx.cluster.dir, 'local.json', storageRunSpec('file://.data/checkpoints'));
  const r = cli(fx.cluster, ['start', '--spec', file, '--run-id', 'local', '--wait', '--json']);
  assert.equal(r.code, 0, r.stderr + w.output());
  const result = r.json<{ result: RunResult }>().result;
  assert.equal(result.status, 'completed');
  await w.kill('SIGKILL');
  return result.weightsSha256!;
}

/** Flips one byte in the middle of a model blob that only the newest checkpoint of the run has. */
async function flipNewestBlob(backend: RunBackend, runId: string): Promise<string> {
  const store = openStore(backend.storage, '/', { ...process.env, ...backend.env });
  const manifests = (await store.list(`${runId}/manifests/`)).filter((k) => k.endsWith('.json'));
  assert.ok(manifests.length >= 2, `two checkpoints before the damage: ${manifests.join(', ')}`);
  const read = async (key: string) => JSON.parse(new TextDecoder().decode(await store.read(key)));
  const newest = await read(manifests[manifests.length - 1]);
  const prev = await read(manifests[manifests.length - 2]);
  const shared = new Set((prev.blobs as Array<{ sha256: string }>).map((b) => b.sha256));
  const blob = (newest.blobs as Array<{ name: string; sha256: string }>).find(
    (b) => !shared.has(b.sha256) && b.name.startsWith('model/'),
  );
  assert.ok(blob, 'the newest checkpoint has a model blob of its own');
  const key = `${runId}/blobs/${blob.sha256}`;
  const bytes = Buffer.from(await store.read(key));
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  await store.writeAtomic(key, bytes);
  return blob.name;
}

export async function killedAndDamagedRunEndsExact(
  fx: ClusterFixture,
  backend: RunBackend,
  reference: string,
): Promise<void> {
  const runId = `on-${backend.name}`;
  // Paced (every step 20 ms longer, same numbers): a chunk of 100 steps runs for over 2 s, so a kill after a step
  // seen inside a chunk lands inside it.
  const w = await fx.worker({ env: backend.env, paced: { stepMs: 20 } });
  const file = writeSpec(fx.cluster.dir, `${backend.name}.json`, storageRunSpec(backend.storage));
  const started = cli(fx.cluster, ['start', '--spec', file, '--run-id', runId, '--json'], { env: backend.env });
  assert.equal(started.code, 0, started.stderr);
  const handle = fx.cluster.client.workflow.getHandle(runId);
  // Kill once two checkpoints are committed and a chunk has reported a step in its first half: mid-chunk.
  const seen = await waitFor(
    'two commits, then a chunk in its first half',
    async () => {
      const committed = (await handle.query(progressQuery)).lastCheckpoint?.step ?? 0;
      const c = await runningChunk(handle);
      return committed >= 100 && c && c.step !== null && c.step % 100 >= 10 && c.step % 100 <= 50 ? c : null;
    },
    120_000,
    50,
  );
  await w.kill('SIGKILL');
  const damaged = await flipNewestBlob(backend, runId);
  await fx.worker({ env: backend.env });
  const result = (await handle.result()) as RunResult;
  assert.equal(result.status, 'completed');
  assert.ok(result.recoveries >= 1, `the chunk killed at step ${seen.step} was retried: ${result.recoveries}`);
  assert.equal(result.weightsSha256, reference, 'storage, a kill and a damaged blob do not change the numbers');
  const progress = await handle.query(progressQuery);
  const said = JSON.stringify(progress.recoveries) + JSON.stringify(progress.skippedCheckpoints);
  assert.match(said, /damaged/, `the fallback past the damaged ${damaged} is reported: ${said}`);
}
