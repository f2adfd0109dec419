// The training workflow's logic, in process: the real workflow bundle on a real Temporal server (the pinned CLI that
// `npm run setup` installs, started by TestWorkflowEnvironment), with mocked activities (./mock-training.ts), so every
// signal, update, query and edge case is checked in seconds. The end-to-end behaviour with real training, worker
// processes and crashes stays in test/integration and test/chaos.
import * as assert from 'node:assert/strict';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure, defineSearchAttributeKey, type SearchAttributeType } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import {
  pauseSignal,
  progressQuery,
  resumeSignal,
  setLearningRateUpdate,
  stopSignal,
} from '../../workflows/definitions';
import type { RunProgress, RunStatus } from '../../workflows/progress';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { trainingWorkflow, type TrainingInput } from '../../workflows/training';
import { MockTraining, mockSpec, WEIGHTS_AT, type MockTrainingOptions } from './mock-training';
import { useWorkflowEnv } from './env';

const searchAttributeKeys = Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) =>
  defineSearchAttributeKey(name, type.toUpperCase() as SearchAttributeType),
);
const statusKey = defineSearchAttributeKey('DurableTrainStatus', 'KEYWORD');
const stepKey = defineSearchAttributeKey('DurableTrainStep', 'INT');
const bestAccuracyKey = defineSearchAttributeKey('DurableTrainBestAccuracy', 'DOUBLE');

describe('training workflow in process (mocked activities)', function () {
  this.timeout(60_000);
  const wf = useWorkflowEnv({ searchAttributes: searchAttributeKeys });
  let queues = 0;

  /** Runs `body` against a fresh worker (own task queue) that serves the real workflows and `mock`'s activities. */
  async function withWorker<T>(
    mock: MockTraining,
    body: (start: (input?: Partial<TrainingInput>, id?: string) => Promise<Handle>) => Promise<T>,
  ): Promise<T> {
    const taskQueue = `wf-${process.pid}-${++queues}`;
    const worker = await Worker.create({
      connection: wf.env.nativeConnection,
      taskQueue,
      workflowBundle: wf.bundle,
      activities: mock.activities(),
      // Cancellation reaches an activity with a heartbeat response: do not wait 8 s (0.8 x heartbeat timeout) for it.
      maxHeartbeatThrottleInterval: '50ms',
    });
    const start = (input: Partial<TrainingInput> = {}, id = `run-${queues}`) =>
      wf.env.client.workflow.start(trainingWorkflow, {
        taskQueue,
        workflowId: id,
        args: [{ spec: mockSpec(), ...input }],
      });
    return worker.runUntil(() => body(start));
  }
  type Handle = WorkflowHandle<typeof trainingWorkflow>;

  const progressOf = (handle: Handle): Promise<RunProgress> => handle.query(progressQuery);
  async function statusReaches(handle: Handle, status: RunStatus): Promise<RunProgress> {
    for (let i = 0; i < 500; i++) {
      const p = await progressOf(handle);
      if (p.status === status) return p;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`status never became ${status}: ${JSON.stringify(await progressOf(handle))}`);
  }
  const mockOf = (options: Partial<MockTrainingOptions> = {}) =>
    new MockTraining({ totalSteps: 8, stepsPerEpoch: 4, ...options });
  /** A value as an activity receives it (through the JSON payload converter). */
  const asSent = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
  /** Each chunk starts from the checkpoint the previous one committed. */
  const assertChained = (mock: MockTraining) => {
    for (let i = 1; i < mock.chunkCalls.length; i++) {
      const prev = mock.chunkResults[i - 1].checkpoint;
      assert.deepEqual(
        mock.chunkCalls[i].from,
        { runId: prev.runId, id: prev.id },
        `chunk ${i} starts where ${i - 1} ended`,
      );
    }
  };

  it('runs a fresh run chunk by chunk to completion; progress and result carry the last chunk', async function () {
    const mock = mockOf();
    const { result, progress } = await withWorker(mock, async (start) => {
      const handle = await start({}, 'fresh');
      const result = await handle.result();
      return { result, progress: await progressOf(handle) };
    });
    assert.equal(mock.prepareCalls.length, 1);
    assert.equal(mock.prepareCalls[0].runId, 'fresh');
    assert.deepEqual(mock.prepareCalls[0].spec, asSent(mockSpec()));
    assert.equal(mock.prepareCalls[0].from, null);
    assert.equal(mock.prepareCalls[0].sourceSpec ?? null, null);
    assert.equal(mock.chunkCalls.length, 4);
    assert.equal(mock.chunkCalls[0].from, null);
    assert.ok(mock.chunkCalls.every((c) => c.steps === 2 && c.runId === 'fresh' && c.learningRateOverride === null));
    assertChained(mock);
    assert.deepEqual(
      mock.retentionCalls.map((r) => r.protect),
      mock.chunkResults.map((s) => [s.checkpoint.id]),
    );
    const last = mock.chunkResults[3];
    assert.deepEqual(result, {
      runId: 'fresh',
      status: 'completed',
      step: 8,
      totalSteps: 8,
      epoch: 2,
      accuracy: last.lastEval?.accuracy,
      loss: last.lastEval?.loss,
      lastCheckpoint: last.checkpoint,
      weightsSha256: WEIGHTS_AT(8),
      backend: 'mock',
      chunks: 4,
      recoveries: 0,
    });
    assert.equal(progress.status, 'completed');
    assert.equal(progress.startMode, 'fresh');
    assert.equal(progress.stepsPerEpoch, 4);
    assert.equal(progress.bestAccuracy, 0.99);
    assert.equal(progress.learningRate, 0.01);
    assert.deepEqual(progress.result, result);
  });

  it('chooses by validation only: best accuracy, the result apart from test; early stopping ends it stopped-early naming its best', async function () {
    const mock = mockOf({ totalSteps: 16, validation: { stopEarlyAt: 12, bestStep: 4 } });
    const { result, progress } = await withWorker(mock, async (start) => {
      const handle = await start({}, 'early');
      const result = await handle.result();
      return { result, progress: await progressOf(handle) };
    });
    assert.equal(result.status, 'stopped-early');
    assert.equal(result.step, 12);
    assert.deepEqual(result.bestCheckpoint, mock.chunkResults[1].checkpoint);
    assert.equal(result.bestCheckpoint?.step, 4);
    // The test result (accuracy 1) is reported and never counted as the best, which is the validation one's.
    assert.equal(result.accuracy, 1);
    assert.equal(result.validation?.split, 'validation');
    assert.equal(result.validation?.step, 12);
    assert.equal(progress.bestAccuracy, 12 / 16);
    assert.equal(progress.status, 'stopped-early');
  });

  it('pause cuts the running chunk, holds the run with no new chunk, resume continues from the cut checkpoint', async function () {
    const mock = mockOf();
    const held = mock.hold(1);
    const { result, paused } = await withWorker(mock, async (start) => {
      const handle = await start();
      await held.started;
      await handle.signal(pauseSignal);
      const paused = await statusReaches(handle, 'paused');
      assert.equal(mock.chunkCalls.length, 2, 'no chunk starts while paused');
      await handle.signal(pauseSignal); // a second pause changes nothing
      await handle.signal(resumeSignal);
      return { result: await handle.result(), paused };
    });
    assert.equal(mock.chunkResults[1].cut, true);
    assert.equal(paused.step, 3, 'the cut chunk committed one step in');
    assert.deepEqual(paused.lastCheckpoint, mock.chunkResults[1].checkpoint);
    assert.deepEqual(mock.chunkCalls[2].from, { runId: paused.lastCheckpoint!.runId, id: paused.lastCheckpoint!.id });
    assertChained(mock);
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 8);
    assert.equal(result.chunks, 5);
  });

  it('stop during a chunk commits at the current step and ends the run as stopped', async function () {
    const mock = mockOf();
    const held = mock.hold(0);
    const result = await withWorker(mock, async (start) => {
      const handle = await start();
      await held.started;
      await handle.signal(stopSignal);
      return handle.result();
    });
    assert.equal(mock.chunkCalls.length, 1);
    assert.equal(mock.chunkResults[0].cut, true);
    assert.equal(result.status, 'stopped');
    assert.equal(result.step, 1);
    assert.deepEqual(result.lastCheckpoint, mock.chunkResults[0].checkpoint);
    assert.equal(result.weightsSha256, WEIGHTS_AT(1));
  });

  it('stop while paused ends the run as stopped without another chunk', async function () {
    const mock = mockOf();
    const held = mock.hold(0);
    const result = await withWorker(mock, async (start) => {
      const handle = await start();
      await held.started;
      await handle.signal(pauseSignal);
      await statusReaches(handle, 'paused');
      await handle.signal(stopSignal);
      return handle.result();
    });
    assert.equal(mock.chunkCalls.length, 1);
    assert.equal(result.status, 'stopped');
    assert.equal(result.step, 1);
  });

  it('resume without a pause changes nothing', async function () {
    const mock = mockOf();
    const held = mock.hold(0);
    const result = await withWorker(mock, async (start) => {
      const handle = await start();
      await held.started;
      await handle.signal(resumeSignal);
      held.release();
      return handle.result();
    });
    assert.equal(mock.chunkResults[0].cut, false);
    assert.equal(result.status, 'completed');
    assert.equal(result.chunks, 4);
  });

  it('set-lr is validated, recorded at the current step, and applied from the next chunk only', async function () {
    const mock = mockOf();
    const held = mock.hold(1);
    const { result, progress, refusals } = await withWorker(mock, async (start) => {
      const handle = await start();
      await held.started;
      const refusals: string[] = [];
      for (const bad of [0, -0.1, 10.5, Number.NaN, Number.POSITIVE_INFINITY, 1e-320, '0.1' as unknown as number]) {
        await assert.rejects(handle.executeUpdate(setLearningRateUpdate, { args: [bad] }), (err: unknown) => {
          assert.ok(err instanceof WorkflowUpdateFailedError, String(err));
          refusals.push(String((err.cause as Error).message));
          return true;
        });
      }
      assert.equal(await handle.executeUpdate(setLearningRateUpdate, { args: [0.5] }), 0.5);
      assert.equal(
        await handle.executeUpdate(setLearningRateUpdate, { args: [10] }),
        10,
        '10 is the upper bound, allowed',
      );
      held.release();
      return { result: await handle.result(), progress: await progressOf(handle), refusals };
    });
    assert.equal(refusals.length, 7);
    for (const r of refusals) assert.match(r, /^learning rate must be a number > 0 and <= 10, got /);
    assert.match(refusals[0], /got 0$/);
    assert.match(refusals[5], /got 1e-320$/, 'a rate that is 0 in float32 would stop training');
    assert.match(refusals[6], /got "0\.1"$/);
    assert.deepEqual(progress.learningRateChanges, [
      { step: 2, value: 0.5 },
      { step: 2, value: 10 },
    ]);
    assert.deepEqual(
      mock.chunkCalls.map((c) => c.learningRateOverride),
      [null, null, 10, null],
      'the latest value is applied once, at the start of the next chunk',
    );
    assert.deepEqual(
      mock.chunkResults.map((s) => s.learningRate),
      [0.01, 0.01, 10, 10],
    );
    assert.equal(progress.learningRate, 10);
    assert.equal(result.status, 'completed');
  });

  it('continue-as-new carries progress, recoveries, learning-rate changes, a pending rate and a pause', async function () {
    const mock = mockOf({ totalSteps: 12 });
    mock.recoverOn(0, { requested: null, restoredFrom: null, reason: 'worker lost', attempt: 2 });
    const held = mock.hold(1); // the last chunk of the first run (chunksPerRun 2)
    const { result, progress, firstRunId, pausedRunId } = await withWorker(mock, async (start) => {
      const handle = await start({ chunksPerRun: 2 }, 'can');
      const firstRunId = (await handle.describe()).runId;
      await held.started;
      assert.equal(await handle.executeUpdate(setLearningRateUpdate, { args: [0.2] }), 0.2);
      await handle.signal(pauseSignal);
      const paused = await statusReaches(handle, 'paused');
      const pausedRunId = (await handle.describe()).runId;
      assert.equal(paused.continuedAsNew, 1, 'the pause cut the last chunk of the first run, then it continued as new');
      assert.equal(mock.chunkCalls.length, 2);
      await handle.signal(resumeSignal);
      return { result: await handle.result(), progress: await progressOf(handle), firstRunId, pausedRunId };
    });
    assert.notEqual(pausedRunId, firstRunId, 'the paused state lives in the new run');
    assert.equal(mock.prepareCalls.length, 1, 'prepareRun runs once per workflow, not per run');
    assertChained(mock);
    assert.deepEqual(
      mock.chunkCalls.map((c) => c.learningRateOverride),
      [null, null, 0.2, null, null, null, null],
    );
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 12);
    assert.equal(result.chunks, 7);
    assert.equal(result.recoveries, 1);
    assert.equal(progress.continuedAsNew, 3);
    assert.deepEqual(progress.recoveries, [
      { requested: null, restoredFrom: null, reason: 'worker lost', attempt: 2, step: 0 },
    ]);
    assert.deepEqual(progress.learningRateChanges, [{ step: 2, value: 0.2 }]);
    assert.equal(progress.startMode, 'fresh');
    assert.equal(progress.stepsPerEpoch, 4);
  });

  it('cancellation waits for the chunk to commit, then ends the run as cancelled', async function () {
    const mock = mockOf();
    const held = mock.hold(1);
    const { err, progress } = await withWorker(mock, async (start) => {
      const handle = await start();
      await held.started;
      await handle.cancel();
      const err = await handle.result().then(
        () => null,
        (e: unknown) => e,
      );
      return { err, progress: await progressOf(handle) };
    });
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.ok(err.cause instanceof CancelledFailure, String(err.cause));
    assert.equal(mock.chunkResults[1].cut, true);
    assert.equal(progress.status, 'cancelled');
    assert.equal(progress.result?.status, 'cancelled');
    assert.equal(progress.result?.step, 3);
    assert.deepEqual(progress.lastCheckpoint, mock.chunkResults[1].checkpoint, 'the cut checkpoint is recorded');
    assert.equal(mock.retentionCalls.length, 1, 'no retention after a cancellation');
  });

  it('cancellation while paused ends the run as cancelled', async function () {
    const mock = mockOf();
    const held = mock.hold(0);
    const { err, progress } = await withWorker(mock, async (start) => {
      const handle = await start();
      await held.started;
      await handle.signal(pauseSignal);
      await statusReaches(handle, 'paused');
      await handle.cancel();
      const err = await handle.result().then(
        () => null,
        (e: unknown) => e,
      );
      return { err, progress: await progressOf(handle) };
    });
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
    assert.equal(mock.chunkCalls.length, 1);
    assert.equal(progress.result?.status, 'cancelled');
    assert.equal(progress.result?.step, 1);
  });

  it('a fork passes its source to prepareRun and trains on from the checkpoint prepareRun returns', async function () {
    const sourceSpec = mockSpec({ learningRate: 0.001 });
    let source: ReturnType<MockTraining['checkpoint']> | undefined;
    const mock = mockOf({
      prepare: (_input, m) => {
        source = m.checkpoint('parent', 4, 0.01);
        return {
          start: source,
          mode: 'fork',
          totalSteps: 8,
          stepsPerEpoch: 4,
          skipped: [],
          specHash: 'mock',
          finished: null,
        };
      },
    });
    const from = { runId: 'parent', id: 'step-000000004-x' };
    const { result, progress } = await withWorker(mock, async (start) => {
      const handle = await start({ from, sourceSpec }, 'child');
      const result = await handle.result();
      return { result, progress: await progressOf(handle) };
    });
    assert.equal(mock.prepareCalls.length, 1);
    assert.equal(mock.prepareCalls[0].runId, 'child');
    assert.deepEqual(mock.prepareCalls[0].spec, asSent(mockSpec()));
    assert.deepEqual(mock.prepareCalls[0].from, from);
    assert.deepEqual(mock.prepareCalls[0].sourceSpec, asSent(sourceSpec), 'the source spec reaches prepareRun');
    assert.deepEqual(mock.chunkCalls[0].from, { runId: 'parent', id: source!.id });
    assert.equal(mock.chunkCalls[0].runId, 'child');
    assert.deepEqual(mock.chunkCalls[0].sourceSpec, asSent(sourceSpec), 'the first chunk starts at the source');
    assert.deepEqual(mock.chunkCalls[1].from?.runId, 'child');
    assert.equal(mock.chunkCalls[1].sourceSpec ?? null, null, 'later chunks start from the fork itself');
    assert.equal(mock.chunkCalls.length, 2);
    assert.equal(progress.startMode, 'fork');
    assert.equal(result.step, 8);
    assert.equal(result.chunks, 2);
  });

  it('a resume past damaged checkpoints records what was skipped and every recovery the chunks report', async function () {
    const skipped = [{ id: 'step-000000006-9', reason: 'blob weights/dense1 sha256 mismatch' }];
    const mock = mockOf({
      prepare: (_input, m) => ({
        start: m.checkpoint('resumed', 4),
        mode: 'resume',
        totalSteps: 8,
        stepsPerEpoch: 4,
        skipped,
        specHash: 'mock',
        finished: null,
      }),
    });
    const damaged = { requested: 'a', restoredFrom: 'b', reason: 'checkpoint a is damaged', attempt: 1 };
    const retried = { requested: 'c', restoredFrom: 'c', reason: 'retry after a worker crash', attempt: 3 };
    mock.recoverOn(0, damaged);
    mock.recoverOn(1, retried);
    const { result, progress } = await withWorker(mock, async (start) => {
      const handle = await start({}, 'resumed');
      const result = await handle.result();
      return { result, progress: await progressOf(handle) };
    });
    assert.equal(progress.startMode, 'resume');
    assert.deepEqual(progress.skippedCheckpoints, skipped);
    assert.deepEqual(progress.recoveries, [
      { ...damaged, step: 4 },
      { ...retried, step: 6 },
    ]);
    assert.equal(result.recoveries, 3, 'failures recovered from: one fallback, then a chunk retried after two crashes');
  });

  it('keeps only the newest 50 recoveries in progress, and counts the kept ones in the result', async function () {
    // attempt 2 = one failure each, so the result counts one per kept recovery.
    const mock = mockOf({ totalSteps: 52, stepsPerEpoch: 52 });
    for (let i = 0; i < 52; i++)
      mock.recoverOn(i, { requested: null, restoredFrom: null, reason: `r${i}`, attempt: 2 });
    const { result, progress } = await withWorker(mock, async (start) => {
      const handle = await start({ spec: mockSpec({ chunkSteps: 1 }) });
      const result = await handle.result();
      return { result, progress: await progressOf(handle) };
    });
    assert.equal(mock.chunkCalls.length, 52);
    assert.equal(progress.recoveries.length, 50);
    assert.equal(progress.recoveries[0].reason, 'r2');
    assert.equal(progress.recoveries[49].reason, 'r51');
    assert.equal(result.recoveries, 50);
  });

  it('when prepareRun finds training already finished, completes at once with the final numbers of that checkpoint', async function () {
    const lastEval = { epoch: 2, step: 8, loss: 0.1, accuracy: 0.97 };
    const mock = mockOf({
      prepare: (_input, m) => ({
        start: m.checkpoint('done', 8),
        mode: 'resume',
        totalSteps: 8,
        stepsPerEpoch: 4,
        skipped: [],
        specHash: 'mock',
        finished: { weightsSha256: 'sha-final', lastEval, backend: 'wasm' },
      }),
    });
    const result = await withWorker(mock, async (start) => (await start({}, 'done')).result());
    assert.equal(mock.chunkCalls.length, 0);
    assert.equal(mock.retentionCalls.length, 0);
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 8);
    assert.equal(result.chunks, 0);
    assert.equal(result.weightsSha256, 'sha-final');
    assert.equal(result.accuracy, 0.97);
    assert.equal(result.loss, 0.1);
    assert.equal(result.backend, 'wasm');
  });

  it('publishes status, step and best accuracy as search attributes when asked, and none otherwise', async function () {
    const mock = mockOf();
    const held = mock.hold(2);
    const seen = await withWorker(mock, async (start) => {
      const on = await start({ searchAttributes: true }, 'sa-on');
      await held.started;
      const running = (await on.describe()).typedSearchAttributes;
      held.release();
      await on.result();
      const done = (await on.describe()).typedSearchAttributes;
      const off = await start({ searchAttributes: false }, 'sa-off');
      await off.result();
      return { running, done, off: (await off.describe()).typedSearchAttributes };
    });
    assert.deepEqual(seen.running.get(statusKey), 'running');
    assert.equal(seen.running.get(stepKey), 4);
    assert.equal(seen.running.get(bestAccuracyKey), 0.5);
    assert.equal(seen.done.get(statusKey), 'completed');
    assert.equal(seen.done.get(stepKey), 8);
    assert.equal(seen.done.get(bestAccuracyKey), 0.99);
    assert.equal(seen.done.get(defineSearchAttributeKey('DurableTrainModel', 'KEYWORD')), 'mnist-mlp');
    assert.equal(seen.done.get(defineSearchAttributeKey('DurableTrainDataset', 'KEYWORD')), 'mnist');
    for (const key of searchAttributeKeys) assert.equal(seen.off.get(key), undefined, key.name);
  });
});
