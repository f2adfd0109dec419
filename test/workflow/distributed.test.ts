// Rounds of a distributed run, in process: the real workflow bundle on a real Temporal server with mocked activities
// (no tfjs, no storage). Checks what the workflow decides: N replicas per round from the round's checkpoint, rounds cut
// at epoch ends, one sync per round with the results in replica order, O(N) events per round, continue-as-new, and a
// pause that cuts a round and runs it again after resume; stop, cancel and a new learning rate in a distributed run.
import * as assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { Worker } from '@temporalio/worker';
import type {
  ReplicaActivities,
  ReplicaResult,
  RoundSummary,
  SyncReplicasInput,
  TrainReplicaInput,
} from '../../activities/replica-types';
import type { TrainingActivities } from '../../activities/types';
import { validateSpec } from '../../spec';
import {
  pauseSignal,
  progressQuery,
  resumeSignal,
  setLearningRateUpdate,
  stopSignal,
} from '../../workflows/definitions';
import { roundEvents } from '../../workflows/round';
import { trainingWorkflow, type TrainingInput } from '../../workflows/training';
import { useWorkflowEnv } from './env';

const REPLICAS = 3;
const STEPS_PER_EPOCH = 5;
const TOTAL = 10;
const spec = validateSpec({
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 240, testLimit: 16, validationFraction: 0 },
  epochs: 2,
  batchSize: 16,
  seed: 1,
  optimizer: { name: 'sgd', learningRate: 0.01 },
  checkpoint: { storage: 'file://unused' },
  distributed: { replicas: REPLICAS, syncEverySteps: 2 },
});

class MockRounds {
  readonly replicaCalls: TrainReplicaInput[] = [];
  readonly syncCalls: SyncReplicasInput[] = [];
  /** When set, the sync of this round reports no progress (as a broken round checkpoint would). */
  stallRound: number | null = null;
  /** The round whose sync reports a fall back past its damaged round checkpoint to the one a step earlier. */
  fallbackRound: number | null = null;
  /** When set, replica 1 of the round with this index waits (heartbeating) until cancelled. */
  holdRound: number | null = null;
  heldStarted: Promise<void>;
  private markHeld!: () => void;
  private seq = 0;
  constructor() {
    this.heldStarted = new Promise((resolve) => (this.markHeld = resolve));
  }

  activities(): TrainingActivities & ReplicaActivities {
    return {
      prepareRun: async () => ({
        start: null,
        mode: 'fresh',
        totalSteps: TOTAL,
        stepsPerEpoch: STEPS_PER_EPOCH,
        skipped: [],
        specHash: 'mock',
        finished: null,
      }),
      trainChunk: async () => {
        throw new Error('a distributed run never trains chunks');
      },
      applyRetention: async () => ({ deleted: [] }),
      trainReplica: async (input): Promise<ReplicaResult> => {
        this.replicaCalls.push(input);
        if (this.holdRound === input.round && input.replica === 1) {
          this.holdRound = null;
          this.markHeld();
          const ctx = Context.current();
          for (;;) {
            ctx.heartbeat();
            await ctx.sleep(20); // throws once the cancellation arrives
          }
        }
        const fromStep = input.from ? Number(input.from.id.split('-')[1]) : 0;
        const step = fromStep + input.steps;
        return {
          replica: input.replica,
          start: input.from,
          recovery: null,
          checkpoint: {
            runId: `${input.runId}.replica-${input.replica}`,
            id: `r${input.replica}-${step}`,
            step,
            epoch: 0,
          },
          fromStep,
          step,
          stepsRun: input.steps,
          loss: 1,
          accuracy: 0.5,
          samplesPerSec: 100,
          trainMs: 1,
          commitMs: 1,
          attempt: 1,
          worker: `w${input.replica}`,
          reused: false,
        };
      },
      syncReplicas: async (input): Promise<RoundSummary> => {
        this.syncCalls.push(input);
        const fellBack = this.fallbackRound === input.round;
        const step = this.stallRound === input.round || fellBack ? input.results[0].fromStep : input.results[0].step;
        const fromStep = fellBack ? step - 1 : input.results[0].fromStep;
        return {
          round: input.round,
          syncMs: 1,
          checkpoint: {
            runId: input.runId,
            id: `g-${step}-${++this.seq}`,
            step,
            epoch: Math.floor(step / STEPS_PER_EPOCH),
          },
          fromStep,
          step,
          totalSteps: TOTAL,
          epoch: Math.floor(step / STEPS_PER_EPOCH),
          done: step >= TOTAL,
          stepsRun: input.results[0].stepsRun,
          cut: false,
          loss: 1,
          accuracy: 0.5,
          learningRate: 0.01,
          evals: [],
          lastEval: null,
          samplesPerSec: 300,
          backend: 'mock',
          commits: 1,
          source: 'restored',
          recovery: fellBack
            ? {
                requested: input.from?.id ?? null,
                restoredFrom: `g-${fromStep}-earlier`,
                reason: 'damaged checkpoint: blob model/w sha256 mismatch',
                attempt: 1,
              }
            : null,
          weightsSha256: `sha-${step}`,
          trainMs: 1,
          commitMs: 1,
        };
      },
    };
  }
}

describe('distributed rounds in the training workflow (mocked activities)', function () {
  this.timeout(60_000);
  const wf = useWorkflowEnv();
  let queues = 0;

  async function withWorker<T>(
    mock: MockRounds,
    body: (start: (input?: Partial<TrainingInput>) => Promise<WorkflowHandle<typeof trainingWorkflow>>) => Promise<T>,
  ): Promise<T> {
    const taskQueue = `dist-${process.pid}-${++queues}`;
    const worker = await Worker.create({
      connection: wf.env.nativeConnection,
      taskQueue,
      workflowBundle: wf.bundle,
      activities: mock.activities(),
      maxHeartbeatThrottleInterval: '50ms',
    });
    const start = (input: Partial<TrainingInput> = {}) =>
      wf.env.client.workflow.start(trainingWorkflow, {
        taskQueue,
        workflowId: `dist-run-${queues}`,
        args: [{ spec, ...input }],
      });
    return worker.runUntil(() => body(start));
  }

  it('runs N replicas per round from the round checkpoint, cuts rounds at epoch ends, syncs in replica order', async function () {
    const mock = new MockRounds();
    const { result, events, progress } = await withWorker(mock, async (start) => {
      const h = await start();
      const result = await h.result();
      const history = await h.fetchHistory();
      return { result, events: history.events?.length ?? 0, progress: await h.query(progressQuery) };
    });
    assert.equal(result.status, 'completed');
    assert.equal(result.step, TOTAL);
    assert.equal(result.weightsSha256, `sha-${TOTAL}`);
    // 5 steps per epoch in rounds of 2: 2, 2, 1 per epoch.
    const rounds = mock.syncCalls.map((s) => s.results[0].stepsRun);
    assert.deepEqual(rounds, [2, 2, 1, 2, 2, 1]);
    assert.equal(mock.replicaCalls.length, REPLICAS * rounds.length);
    for (const [k, sync] of mock.syncCalls.entries()) {
      const calls = mock.replicaCalls.filter((c) => c.round === k);
      assert.deepEqual(calls.map((c) => c.replica).sort(), [0, 1, 2]);
      assert.ok(
        calls.every((c) => JSON.stringify(c.from) === JSON.stringify(sync.from)),
        `round ${k} from`,
      );
      assert.deepEqual(
        sync.results.map((r) => r.replica),
        [0, 1, 2],
      );
      const prev = k === 0 ? null : mock.syncCalls[k - 1];
      assert.equal(sync.from?.id ?? null, prev ? `g-${prev.results[0].step}-${k}` : null);
    }
    assert.ok(events <= rounds.length * roundEvents(REPLICAS) + 20, `${events} events for ${rounds.length} rounds`);
    assert.deepEqual(
      progress.lastRound?.replicas.map((r) => r.worker),
      ['w0', 'w1', 'w2'],
    );
  });

  it('fails the run, naming the round, when a round does not advance', async function () {
    const mock = new MockRounds();
    mock.stallRound = 2;
    const err = await withWorker(mock, async (start) =>
      (await start()).result().then(
        () => null,
        (e: Error) => e,
      ),
    );
    assert.ok(err, 'the run should fail');
    assert.match(
      String((err.cause as Error | undefined)?.message ?? err.message),
      /round 2 ended at step 4, not past 4/,
    );
    assert.equal(mock.syncCalls.length, 3);
  });

  it('a round that fell back past a damaged round checkpoint may end where the run was: the run goes on from there', async function () {
    const mock = new MockRounds();
    mock.fallbackRound = 3; // from step 5: falls back to step 4 and ends at 5 again
    const { result, progress } = await withWorker(mock, async (start) => {
      const h = await start();
      return { result: await h.result(), progress: await h.query(progressQuery) };
    });
    assert.equal(result.status, 'completed');
    assert.equal(result.step, TOTAL);
    assert.equal(mock.syncCalls.length, 7, 'the lost round is run again');
    assert.deepEqual(
      mock.syncCalls.map((c) => c.from?.id.split('-')[1] ?? '0'),
      ['0', '2', '4', '5', '5', '7', '9'],
      'rounds 3 and 4 both start at step 5',
    );
    const fallback = progress.recoveries.find((r) => /damaged/.test(r.reason));
    assert.ok(fallback && fallback.restoredFrom === 'g-4-earlier' && fallback.step === 4, JSON.stringify(fallback));
  });

  it('continues as new every few rounds, carrying the position', async function () {
    const mock = new MockRounds();
    const result = await withWorker(mock, async (start) => (await start({ chunksPerRun: 2 })).result());
    assert.equal(result.step, TOTAL);
    assert.equal(mock.syncCalls.length, 6);
    assert.deepEqual(
      mock.syncCalls.map((s) => s.round),
      [0, 1, 2, 3, 4, 5],
    );
  });

  it('a pause cuts the round; after resume the round runs again from the same checkpoint', async function () {
    const mock = new MockRounds();
    mock.holdRound = 1;
    const result = await withWorker(mock, async (start) => {
      const h = await start();
      await mock.heldStarted;
      await h.signal(pauseSignal);
      for (let i = 0; i < 200 && (await h.query(progressQuery)).status !== 'paused'; i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal((await h.query(progressQuery)).status, 'paused');
      await h.signal(resumeSignal);
      return h.result();
    });
    assert.equal(result.step, TOTAL);
    const round1 = mock.replicaCalls.filter((c) => c.round === 1);
    assert.equal(round1.length, 2 * REPLICAS); // cut once, then run again
    assert.ok(round1.every((c) => c.from?.id === round1[0].from?.id));
    assert.equal(mock.syncCalls.length, 6);
  });

  it('set-lr: the next round trains every replica at the new rate, once (its round checkpoint carries it on)', async function () {
    const mock = new MockRounds();
    const { result, progress } = await withWorker(mock, async (start) => {
      const h = await start();
      for (let i = 0; i < 500 && mock.syncCalls.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await h.executeUpdate(setLearningRateUpdate, { args: [0.05] }), 0.05);
      await assert.rejects(h.executeUpdate(setLearningRateUpdate, { args: [11] }), (e: Error) =>
        /must be a number > 0 and <= 10, got 11/.test(String((e.cause as Error | undefined)?.message)),
      );
      return { result: await h.result(), progress: await h.query(progressQuery) };
    });
    assert.equal(result.step, TOTAL);
    const changed = mock.replicaCalls.filter((c) => c.learningRateOverride === 0.05);
    assert.equal(changed.length, REPLICAS, 'every replica of one round');
    const round = changed[0].round;
    assert.ok(round >= 1, `round ${round}`);
    assert.ok(changed.every((c) => c.round === round));
    assert.ok(
      mock.replicaCalls.filter((c) => c.round !== round).every((c) => (c.learningRateOverride ?? null) === null),
      'no other round is overridden',
    );
    assert.deepEqual(
      progress.learningRateChanges.map((c) => c.value),
      [0.05],
      'the refused rate is not recorded',
    );
  });

  it('stop cuts the round in flight (its replicas cancelled) and ends the run stopped at the last synced round', async function () {
    const mock = new MockRounds();
    mock.holdRound = 1;
    const result = await withWorker(mock, async (start) => {
      const h = await start();
      await mock.heldStarted;
      await h.signal(stopSignal);
      return h.result();
    });
    assert.equal(result.status, 'stopped');
    assert.equal(result.step, 2, 'the step of round 0, the last synced');
    assert.equal(mock.syncCalls.length, 1, 'the cut round is not synced');
    assert.equal(mock.replicaCalls.filter((c) => c.round === 1).length, REPLICAS);
  });

  it('cancel cuts the round in flight and ends the run cancelled, nothing synced after', async function () {
    const mock = new MockRounds();
    mock.holdRound = 1;
    const { err, progress } = await withWorker(mock, async (start) => {
      const h = await start();
      await mock.heldStarted;
      await h.cancel();
      const err = await h.result().then(
        () => null,
        (e: Error) => e,
      );
      return { err, progress: await h.query(progressQuery) };
    });
    assert.ok(err, 'the run must end cancelled, not completed');
    assert.match(String((err.cause as Error | undefined)?.message ?? err.message), /cancel/i);
    assert.equal(progress.status, 'cancelled');
    assert.equal(progress.step, 2);
    assert.equal(mock.syncCalls.length, 1);
  });
});
