// Steering runs from the CLI against the real dev server: pause/resume, set-lr, stop, cancel, fork, lineage.
import * as assert from 'node:assert/strict';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { progressQuery, setLearningRateUpdate } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, waitFor, writeSpec, type WorkerProcess } from '../helpers/cluster';
import { useCluster } from '../helpers/fixtures';

const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 12000, testLimit: 300, validationFraction: 0 },
  epochs: 1,
  batchSize: 16,
  chunkSteps: 150,
  seed: 99,
  dropout: 0.1,
  optimizer: { name: 'adam', learningRate: 0.001 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 2, keepEverySteps: 300 },
};

describe('operating runs from the CLI (real dev server, real worker)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let specFile: string;
  let reference: RunResult;

  const manifestsOf = (runId: string) => fx.manifests(runId);
  const newestOf = (runId: string) => manifestsOf(runId).sort((a, b) => b.step - a.step)[0];
  const startRun = (runId: string) => {
    const r = cli(fx.cluster, ['start', '--spec', specFile, '--run-id', runId, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return fx.cluster.client.workflow.getHandle(runId);
  };
  const stepAtLeast = (runId: string, n: number) =>
    waitFor(
      `${runId} past step ${n}`,
      async () => ((await fx.cluster.client.workflow.getHandle(runId).query(progressQuery)).step ?? 0) >= n,
      120_000,
      100,
    );
  /** The step the running chunk last reported in its heartbeat, or null (no chunk running, no heartbeat yet). */
  const heartbeatStep = async (runId: string): Promise<number | null> => {
    const d = await fx.cluster.client.workflow.getHandle(runId).describe();
    const hb = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'trainChunk')?.heartbeatDetails;
    const step = hb?.payloads?.[0]?.data ? JSON.parse(Buffer.from(hb.payloads[0].data).toString()).step : null;
    return typeof step === 'number' ? step : null;
  };
  /** The step the running chunk last reported (its heartbeat), or the workflow's step between chunks. */
  const currentStep = async (runId: string) =>
    Math.max(
      (await heartbeatStep(runId)) ?? 0,
      (await fx.cluster.client.workflow.getHandle(runId).query(progressQuery)).step ?? 0,
    );
  /**
   * Waits until a chunk after the first is training and early in its 150 steps (at most 40 in), so that at 30 ms a step
   * over 3 s of it remain for a CLI process to start and steer it: the cut then lands inside the chunk, not between two.
   */
  const earlyInChunk = (runId: string) =>
    waitFor(
      `${runId} early in a chunk`,
      async () => {
        const from = (await fx.cluster.client.workflow.getHandle(runId).query(progressQuery)).step ?? 0;
        if (from < 150) return false;
        const step = await heartbeatStep(runId);
        return typeof step === 'number' && step > from && step <= from + 40;
      },
      120_000,
      50,
    );
  const chunkPending = async (runId: string) =>
    ((await fx.cluster.client.workflow.getHandle(runId).describe()).raw.pendingActivities ?? []).some(
      (a) => a.activityType?.name === 'trainChunk',
    );

  let paced: WorkerProcess;

  before(async function () {
    // The reference run is not steered: an unpaced worker trains it.
    const plain = await fx.worker();
    specFile = writeSpec(fx.cluster.dir, 'spec.json', spec);
    const r = cli(fx.cluster, ['start', '--spec', specFile, '--run-id', 'ref', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr + plain.output());
    reference = r.json<{ result: RunResult }>().result;
    assert.equal(reference.step, 750);
    await plain.kill('SIGTERM');
    // The runs below are steered. Paced: every step takes 30 ms longer (wall time only, same numbers), so a chunk of
    // 150 steps lasts over 4 s, well over the time a CLI process needs to start and steer it and the heartbeat that
    // delivers the cut, on any machine: pause, stop and cancel land inside a running chunk.
    paced = await fx.worker({ paced: { stepMs: 30 } });
  });

  it('pause holds the run (no steps while paused); resume finishes with the hash of a never-paused run', async function () {
    const handle = startRun('paused');
    await stepAtLeast('paused', 100);
    const p = cli(fx.cluster, ['pause', 'paused', '--json']);
    assert.equal(p.code, 0, p.stderr);
    await waitFor('status paused', async () => (await handle.query(progressQuery)).status === 'paused', 60_000);
    const at = (await handle.query(progressQuery)).step;
    assert.ok(at < 750, `paused before the end (step ${at})`);
    // Paused means no chunk is scheduled or running, and the cut chunk committed at the step the run reports.
    await waitFor('the cut chunk to finish', async () => !(await chunkPending('paused')), 60_000, 100);
    const newest = newestOf('paused');
    assert.equal(newest.reason, 'pause');
    assert.equal(newest.step, at);
    // A window of real length in which the worker was free to train it: another run trains a whole chunk (150 paced
    // steps, over 4 s) on the same single-slot worker. Had the paused run scheduled a chunk, the worker could have
    // taken it; it has none, and its step has not moved.
    const scheduledChunks = async () =>
      ((await handle.fetchHistory()).events ?? []).filter(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainChunk',
      ).length;
    const chunksWhenPaused = await scheduledChunks();
    const probe = startRun('probe');
    await stepAtLeast('probe', 150);
    await probe.terminate('the window is over');
    const later = await handle.query(progressQuery);
    assert.equal(later.step, at, 'no training while paused');
    assert.equal(await currentStep('paused'), at, 'no chunk reported a step while paused');
    assert.equal(later.status, 'paused');
    assert.equal(await chunkPending('paused'), false, 'no chunk runs while paused');
    assert.equal(await scheduledChunks(), chunksWhenPaused, 'no chunk was scheduled while paused');
    const status = cli(fx.cluster, ['status', 'paused', '--json']).json<{ status: string }>();
    assert.equal(status.status, 'paused');
    assert.equal(cli(fx.cluster, ['resume', 'paused']).code, 0);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.weightsSha256, reference.weightsSha256);
  });

  it('set-lr validates (rejected values change nothing) and records the change in checkpoints and history', async function () {
    const handle = startRun('lr');
    await stepAtLeast('lr', 50);
    // Hold the run while we try values, so it cannot finish under us.
    assert.equal(cli(fx.cluster, ['pause', 'lr']).code, 0);
    await waitFor('status paused', async () => (await handle.query(progressQuery)).status === 'paused', 60_000);
    for (const [bad, why] of [
      ['-1', /set-lr: VALUE must be > 0, got -1/],
      ['0', /set-lr: VALUE must be > 0, got 0/],
      ['abc', /set-lr: VALUE must be a number, got "abc"/],
      ['100', /set-lr: VALUE must be <= 10, got 100/],
    ] as const) {
      const r = cli(fx.cluster, ['set-lr', 'lr', bad]);
      assert.equal(r.code, 2, `${bad}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, why);
    }
    // The workflow's own validator, for clients that skip the CLI's check: refused, and nothing recorded.
    for (const bad of [100, 0, -1, 1e-320, Number.NaN]) {
      await assert.rejects(handle.executeUpdate(setLearningRateUpdate, { args: [bad] }), (err: unknown) => {
        assert.ok(err instanceof WorkflowUpdateFailedError, String(err));
        assert.match(String((err.cause as Error | undefined)?.message), /learning rate must be a number > 0 and <= 10/);
        return true;
      });
    }
    assert.deepEqual((await handle.query(progressQuery)).learningRateChanges, []);
    const ok = cli(fx.cluster, ['set-lr', 'lr', '0.0005', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.json<{ learningRate: number }>().learningRate, 0.0005);
    assert.equal(cli(fx.cluster, ['resume', 'lr']).code, 0);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.notEqual(result.weightsSha256, reference.weightsSha256, 'a different learning rate changes the weights');
    const progress = await handle.query(progressQuery);
    assert.deepEqual(
      progress.learningRateChanges.map((c) => c.value),
      [0.0005],
    );
    const last = manifestsOf('lr').sort((a, b) => b.step - a.step)[0];
    assert.equal(last.metrics.learningRate, 0.0005);
    const history = await handle.fetchHistory();
    assert.ok(
      history.events?.some((e) => e.workflowExecutionUpdateAcceptedEventAttributes),
      'the update is in the history',
    );
  });

  it('stop commits a final checkpoint and completes with status stopped', async function () {
    const handle = startRun('stopped');
    await earlyInChunk('stopped');
    assert.equal(cli(fx.cluster, ['stop', 'stopped']).code, 0);
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'stopped');
    assert.ok(result.step < 750, `stopped early at ${result.step}`);
    const last = newestOf('stopped');
    assert.equal(last.id, result.lastCheckpoint?.id);
    assert.equal(last.step, result.step);
    assert.equal(last.reason, 'stop', 'the final checkpoint is the one the stop cut');
    assert.equal(cli(fx.cluster, ['status', 'stopped', '--json']).json<{ status: string }>().status, 'stopped');
    const runs = cli(fx.cluster, ['runs', 'list', '--json']).json<Array<{ runId: string; status: string }>>();
    assert.equal(runs.find((x) => x.runId === 'stopped')?.status, 'stopped');

    // A spec the stopped run cannot continue with is refused before anything starts, and the run stays stopped.
    const executionId = (await handle.describe()).runId;
    const refusals: Array<[string, object, RegExp]> = [
      [
        'batch32.json',
        { ...spec, batchSize: 32 },
        /750 steps per epoch, the spec gives 375: .*batchSize cannot change/,
      ],
      ['replicas2.json', { ...spec, distributed: { replicas: 2, syncEverySteps: 5 } }, /by 1 replica, the spec has 2/],
      [
        'linear.json',
        {
          ...spec,
          dropout: undefined,
          model: { layers: [{ type: 'flatten' }, { type: 'dense', units: 10, activation: 'softmax' }] },
        },
        /different model topology/,
      ],
    ];
    for (const [file, changed, why] of refusals) {
      const r = cli(fx.cluster, ['start', '--spec', writeSpec(fx.cluster.dir, file, changed), '--run-id', 'stopped']);
      assert.equal(r.code, 2, `${file}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /run stopped cannot continue with this spec: /);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /Nothing was started and the run is as it was/);
    }
    const after = await fx.cluster.client.workflow.getHandle('stopped').describe();
    assert.equal(after.runId, executionId, 'no new execution began');
    assert.equal(cli(fx.cluster, ['status', 'stopped', '--json']).json<{ status: string }>().status, 'stopped');
  });

  it('cancel ends the run as cancelled after the running chunk checkpoints', async function () {
    const handle = startRun('cancelled');
    await earlyInChunk('cancelled');
    const before = await currentStep('cancelled');
    assert.equal(cli(fx.cluster, ['cancel', 'cancelled']).code, 0);
    await assert.rejects(handle.result());
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    // The checkpoint the cancellation cut: reason cancel, at or after the step reached before the cancel.
    const newest = newestOf('cancelled');
    assert.equal(newest.reason, 'cancel', JSON.stringify(manifestsOf('cancelled').map((m) => [m.step, m.reason])));
    assert.ok(newest.step >= before && newest.step < 750, `cancel checkpoint at ${newest.step}, ${before} before`);
  });

  it('fork from a mid-run checkpoint with an empty override ends with the original hash; lineage and runs list show it', async function () {
    // Nobody steers the forks: an unpaced worker trains them.
    await paced.kill('SIGTERM');
    await fx.worker();
    const mid = manifestsOf('ref').find((m) => m.step === 300);
    assert.ok(mid, 'keepEverySteps kept step 300');
    const override = writeSpec(fx.cluster.dir, 'empty.json', {});
    const r = cli(fx.cluster, [
      'fork',
      '--from',
      `ref:${mid.id}`,
      '--spec-override',
      override,
      '--run-id',
      'ref-fork',
      '--wait',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.step, 750);
    assert.equal(result.weightsSha256, reference.weightsSha256);
    const first = manifestsOf('ref-fork').sort((a, b) => a.step - b.step)[0];
    assert.ok(first.step > 300);

    // A fork that changes the learning rate, keeping all its checkpoints: its first checkpoint's parent is the
    // source checkpoint, every later one's is the one before it, and it trains at the new rate to a different end.
    const changed = writeSpec(fx.cluster.dir, 'lr.json', {
      optimizer: { learningRate: 0.01 },
      checkpoint: { keepLatest: 100 },
    });
    const r2 = cli(fx.cluster, [
      'fork',
      '--from',
      `ref:${mid.id}`,
      '--spec-override',
      changed,
      '--run-id',
      'ref-fork-lr',
      '--wait',
      '--json',
    ]);
    assert.equal(r2.code, 0, r2.stderr);
    const lrResult = r2.json<{ result: RunResult }>().result;
    assert.equal(lrResult.status, 'completed');
    assert.equal(lrResult.step, 750);
    assert.notEqual(lrResult.weightsSha256, reference.weightsSha256, 'a different learning rate changes the weights');
    const chain = manifestsOf('ref-fork-lr').sort((a, b) => a.step - b.step);
    assert.deepEqual(
      chain.map((m) => m.step),
      [450, 600, 750],
    );
    assert.deepEqual(chain[0].parent, { runId: 'ref', id: mid.id }, 'the first parent is the source checkpoint');
    for (let i = 1; i < chain.length; i++) {
      assert.deepEqual(chain[i].parent, { runId: 'ref-fork-lr', id: chain[i - 1].id }, `parent of ${chain[i].id}`);
    }
    for (const m of chain) assert.equal(m.metrics.learningRate, 0.01, `${m.id} trained at the fork's rate`);
    const bad = writeSpec(fx.cluster.dir, 'bad.json', { optimizer: { learningRate: -3 } });
    const r3 = cli(fx.cluster, ['fork', '--from', 'ref', '--spec-override', bad]);
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /optimizer\.learningRate/);

    // Frozen layers: a fine-tuning fork keeps dense1 byte-identical to the source checkpoint while dense2 trains.
    const freeze = writeSpec(fx.cluster.dir, 'freeze.json', { freeze: ['dense1'] });
    const r4 = cli(fx.cluster, [
      'fork',
      '--from',
      `ref:${mid.id}`,
      '--spec-override',
      freeze,
      '--run-id',
      'ref-frozen',
      '--wait',
      '--json',
    ]);
    assert.equal(r4.code, 0, r4.stderr);
    const frozenEnd = manifestsOf('ref-frozen').sort((a, b) => b.step - a.step)[0];
    const blobOf = (m: { blobs: Array<{ name: string; sha256: string }> }, name: string) =>
      m.blobs.find((b) => b.name === name)?.sha256;
    for (const w of ['model/dense1/kernel', 'model/dense1/bias']) assert.equal(blobOf(frozenEnd, w), blobOf(mid, w), w);
    assert.notEqual(blobOf(frozenEnd, 'model/dense2/kernel'), blobOf(mid, 'model/dense2/kernel'));

    const lineage = cli(fx.cluster, ['lineage', 'ref-fork']);
    assert.equal(lineage.code, 0, lineage.stderr);
    assert.match(lineage.stdout, /^ref \[/m);
    assert.match(lineage.stdout, /ref-fork \[.*\(from step-000000300/);
    assert.match(lineage.stdout, /ref-fork-lr/);
    const runs = cli(fx.cluster, ['runs', 'list', '--json']).json<
      Array<{ runId: string; status: string; model: string }>
    >();
    for (const id of ['ref', 'ref-fork', 'ref-fork-lr', 'ref-frozen']) {
      assert.ok(
        runs.some((x) => x.runId === id),
        `runs list has ${id}`,
      );
    }
    assert.equal(runs.find((x) => x.runId === 'ref-fork')?.status, 'completed');
  });
});
