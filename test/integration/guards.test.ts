// Resume guards: a run never silently continues on different data or a different backend.
import * as assert from 'node:assert/strict';
import type { RunResult } from '../../workflows/progress';
import { cli, waitFor, writeSpec } from '../helpers/cluster';
import { useCluster } from '../helpers/fixtures';
import { progressQuery } from '../../workflows/definitions';

const base = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 8000, testLimit: 300, validationFraction: 0 },
  epochs: 1,
  batchSize: 16,
  chunkSteps: 100,
  seed: 21,
  optimizer: { name: 'sgd', learningRate: 0.05 },
  checkpoint: { storage: 'file://.data/checkpoints' },
};

describe('resume guards (real dev server, real workers on different backends)', function () {
  this.timeout(600_000);
  // Workers are killed after each test (a worker left alive would take the next test's run). Paced: every step takes
  // 20 ms longer (wall time only, same numbers), so a run of 500 steps lasts over 10 s and the stop sent from a fresh
  // CLI process after the first checkpoint lands long before the run could finish.
  const fx = useCluster();
  const worker = (backend: string) => fx.worker({ env: { DURABLE_TRAIN_BACKEND: backend }, paced: { stepMs: 20 } });
  const stopAfterFirstChunk = async (runId: string, specFile: string) => {
    assert.equal(cli(cluster, ['start', '--spec', specFile, '--run-id', runId]).code, 0);
    const handle = cluster.client.workflow.getHandle(runId);
    await waitFor(
      'a checkpoint',
      async () => ((await handle.query(progressQuery)).lastCheckpoint?.step ?? 0) > 0,
      120_000,
      100,
    );
    assert.equal(cli(cluster, ['stop', runId]).code, 0);
    const r = (await handle.result()) as RunResult;
    assert.equal(r.status, 'stopped');
    return r;
  };

  let cluster: typeof fx.cluster;
  before(function () {
    cluster = fx.cluster;
  });

  it('different data: refused with a message naming the dataset, unless resume.allowDatasetChange', async function () {
    await worker('wasm');
    const stopped = await stopAfterFirstChunk('data', writeSpec(cluster.dir, 'a.json', base));
    const show = cli(cluster, ['checkpoints', 'show', 'data', stopped.lastCheckpoint!.id, '--json']);
    assert.equal(show.code, 0, show.stderr);
    const manifest = show.json<{
      fingerprints: { dataset: string };
      backend: { name: string };
      state: { rng: unknown };
    }>();
    assert.match(manifest.fingerprints.dataset, /^[0-9a-f]{64}$/);
    assert.equal(manifest.backend.name, 'wasm');
    assert.ok(manifest.state.rng, 'the PRNG state is in the checkpoint');

    const changed = writeSpec(cluster.dir, 'b.json', { ...base, dataset: { ...base.dataset, testLimit: 200 } });
    // Refused by `start` before anything starts: the run stays stopped.
    const r = cli(cluster, ['start', '--spec', changed, '--run-id', 'data', '--wait']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /different data \(dataset fingerprint .*resume\.allowDatasetChange/);
    const st = cli(cluster, ['status', 'data', '--json']).json<{ status: string; workflowStatus: string }>();
    assert.deepEqual([st.status, st.workflowStatus], ['stopped', 'COMPLETED']);

    const allowed = writeSpec(cluster.dir, 'c.json', {
      ...base,
      dataset: { ...base.dataset, testLimit: 200 },
      resume: { allowDatasetChange: true },
    });
    const ok = cli(cluster, ['start', '--spec', allowed, '--run-id', 'data', '--wait', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.json<{ result: RunResult }>().result.status, 'completed');
    assert.equal(ok.json<{ result: RunResult }>().result.backend, 'wasm');
  });

  it('different backend: refused unless resume.allowBackendChange; batch size changes are refused', async function () {
    const wasm = await worker('wasm');
    await stopAfterFirstChunk('backend', writeSpec(cluster.dir, 'd.json', base));
    await wasm.kill('SIGTERM');
    await worker('cpu');
    const again = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'd.json', base),
      '--run-id',
      'backend',
      '--wait',
    ]);
    assert.notEqual(again.code, 0);
    const st = cli(cluster, ['status', 'backend', '--json']).json<{ failure: string }>();
    assert.match(st.failure, /written on backend wasm, this worker runs cpu/);

    const batch = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'e.json', { ...base, batchSize: 32, resume: { allowBackendChange: true } }),
      '--run-id',
      'backend',
      '--wait',
    ]);
    assert.equal(batch.code, 2, batch.stderr);
    assert.match(batch.stderr, /batchSize cannot change/);

    const ok = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'f.json', { ...base, resume: { allowBackendChange: true } }),
      '--run-id',
      'backend',
      '--wait',
      '--json',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const result = ok.json<{ result: RunResult }>().result;
    assert.equal(result.status, 'completed');
    assert.equal(result.backend, 'cpu');
  });
});
