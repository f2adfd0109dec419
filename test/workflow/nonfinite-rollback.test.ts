// onNonFinite, in process: the real workflow bundle on a real Temporal server (TestWorkflowEnvironment) and mocked
// activities whose second chunk diverges (NonFiniteValues, as the activity's failure catalogue raises it). "stop" (the
// default) fails the run naming the step and rate; "rollback" resumes from the last finite checkpoint at half the
// rate, recorded in the progress, at most maxRollbacks times.
import * as assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import type { TrainChunkInput } from '../../activities/types';
import { validateSpec, type RunSpec } from '../../spec';
import { trainingWorkflow } from '../../workflows/training';
import { progressQuery } from '../../workflows/definitions';
import type { RunProgress } from '../../workflows/progress';
import { MockTraining, mockSpec } from './mock-training';
import { useWorkflowEnv } from './env';

describe('onNonFinite: stop or roll back (mocked activities)', function () {
  this.timeout(60_000);
  const wf = useWorkflowEnv();
  let queues = 0;

  /** A run whose chunks diverge while their learning rate is above 0.003 (the spec's is 0.01). */
  async function run(spec: RunSpec) {
    const mock = new MockTraining({ totalSteps: 6, stepsPerEpoch: 6 });
    const base = mock.activities();
    const taskQueue = `nonfinite-${process.pid}-${++queues}`;
    const worker = await Worker.create({
      connection: wf.env.nativeConnection,
      taskQueue,
      workflowBundle: wf.bundle,
      activities: {
        ...base,
        trainChunk: async (input: TrainChunkInput) => {
          // The rate the chunk trains at: an override, else the one its checkpoint carries on.
          const carried = mock.chunkResults.find((r) => r.checkpoint.id === input.from?.id)?.learningRate;
          const rate = input.learningRateOverride ?? carried ?? spec.optimizer.learningRate;
          if (mock.chunkCalls.length >= 1 && rate > 0.003) {
            mock.chunkCalls.push(input);
            throw ApplicationFailure.create({
              type: 'NonFiniteValues',
              message: `the training loss is NaN at step 3 (learning rate ${rate}): training diverged`,
              details: [{ step: 3, learningRate: rate }],
              nonRetryable: true,
            });
          }
          return base.trainChunk(input);
        },
      },
    });
    return worker.runUntil(async () => {
      const handle = await wf.env.client.workflow.start(trainingWorkflow, {
        taskQueue,
        workflowId: `nonfinite-${queues}`,
        args: [{ spec }],
      });
      const outcome = await handle.result().then(
        (r) => ({ result: r, err: null }),
        (e: unknown) => ({ result: null, err: e as Error }),
      );
      const progress = await handle.query(progressQuery).catch(() => null);
      return { ...outcome, mock, progress: progress as RunProgress | null };
    });
  }

  const withMode = (extra: Record<string, unknown>) => validateSpec({ ...mockSpec(), ...extra });

  it('stop (the default): the run fails with the non-finite failure, no retry at another rate', async () => {
    const { err, mock } = await run(mockSpec());
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.match(String((err.cause?.cause as Error | undefined)?.message), /NaN at step 3 \(learning rate 0\.01\)/);
    assert.equal(mock.chunkCalls.length, 2);
  });

  it('rollback: resumes from the last finite checkpoint at half the rate until it trains, recorded', async () => {
    const { result, err, mock, progress } = await run(withMode({ onNonFinite: 'rollback' }));
    assert.equal(result?.status, 'completed', String(err));
    const first = mock.chunkResults[0].checkpoint.id;
    // 0.01 diverges, 0.005 diverges, 0.0025 trains: every retry starts from the first chunk's checkpoint.
    assert.deepEqual(
      mock.chunkCalls.slice(1, 4).map((c) => [c.from?.id, c.learningRateOverride ?? null]),
      [
        [first, null],
        [first, 0.005],
        [first, 0.0025],
      ],
    );
    assert.deepEqual(progress?.rollbacks, [
      { step: 3, from: first, learningRate: 0.005 },
      { step: 3, from: first, learningRate: 0.0025 },
    ]);
  });

  it('rollback stops after maxRollbacks and fails the run', async () => {
    const { err, mock } = await run(withMode({ onNonFinite: 'rollback', maxRollbacks: 1 }));
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.match(String((err.cause?.cause as Error | undefined)?.message), /learning rate 0\.005/);
    assert.equal(mock.chunkCalls.length, 3);
  });
});
