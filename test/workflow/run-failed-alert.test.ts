// The run-failed alert, in process: the real workflow bundle on a real Temporal server (TestWorkflowEnvironment with
// the pinned CLI) and mocked activities. A failed run sends one alert naming the run and its last checkpoint; an alert
// that cannot be delivered never changes the run's outcome; a cancelled run sends none.
import * as assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { Worker } from '@temporalio/worker';
import type { AlertInput } from '../../activities/alert-types';
import { trainingWorkflow } from '../../workflows/training';
import { MockTraining, mockSpec } from './mock-training';
import { useWorkflowEnv } from './env';

describe('run-failed alert from the training workflow (mocked activities)', function () {
  this.timeout(60_000);
  const wf = useWorkflowEnv();
  let queues = 0;

  /** Runs a workflow whose second chunk fails for good; `sendAlert` as given. */
  async function failingRun(sendAlert: (a: AlertInput) => Promise<unknown>, opts: { cancelFirstChunk?: boolean } = {}) {
    const mock = new MockTraining({ totalSteps: 8, stepsPerEpoch: 4 });
    const held = opts.cancelFirstChunk ? mock.hold(0) : null;
    const base = mock.activities();
    const taskQueue = `alert-${process.pid}-${++queues}`;
    const worker = await Worker.create({
      connection: wf.env.nativeConnection,
      taskQueue,
      workflowBundle: wf.bundle,
      maxHeartbeatThrottleInterval: '50ms',
      activities: {
        ...base,
        trainChunk: async (input: Parameters<typeof base.trainChunk>[0]) => {
          if (mock.chunkCalls.length >= 1) {
            throw ApplicationFailure.create({ type: 'InvalidSpec', message: 'disk on fire', nonRetryable: true });
          }
          return base.trainChunk(input);
        },
        sendAlert,
      },
    });
    return worker.runUntil(async () => {
      const handle = await wf.env.client.workflow.start(trainingWorkflow, {
        taskQueue,
        workflowId: `alert-run-${queues}`,
        args: [{ spec: mockSpec() }],
      });
      if (held) {
        await held.started;
        await handle.cancel();
      }
      const err = await handle.result().then(
        () => assert.fail('the run should not complete'),
        (e: unknown) => e as Error,
      );
      return { err, mock, runId: handle.workflowId };
    });
  }

  it('a failed run sends one run-failed alert with the run, its last checkpoint and the cause', async function () {
    const alerts: AlertInput[] = [];
    const { err, mock, runId } = await failingRun(async (a) => {
      alerts.push(a);
      return { delivered: true, suppressed: false };
    });
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(String((err.cause?.cause as Error | undefined)?.message), /disk on fire/);
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0].kind, 'run-failed');
    assert.equal(alerts[0].runId, runId);
    assert.equal(alerts[0].checkpointId, mock.chunkResults[0].checkpoint.id);
    assert.match(alerts[0].message, /^run failed at step 2: .*disk on fire/);
  });

  it('an alert that cannot be delivered leaves the run failing with its own error', async function () {
    let attempts = 0;
    const { err } = await failingRun(async () => {
      attempts += 1;
      throw ApplicationFailure.create({ type: 'AlertDeliveryFailed', message: 'webhook 403', nonRetryable: true });
    });
    assert.equal(attempts, 1);
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(String((err.cause?.cause as Error | undefined)?.message), /disk on fire/);
    assert.doesNotMatch(
      String(err.cause?.message) + String((err.cause?.cause as Error | undefined)?.message),
      /webhook/,
    );
  });

  it('a webhook that hangs does not hold up the failing run (the wait is bounded by a timer)', async function () {
    // Without the bound the run would wait for every attempt of the hanging delivery (minutes): past this test's timeout.
    this.timeout(45_000);
    let started = 0;
    const { err } = await failingRun(
      () =>
        new Promise((resolve) => {
          started += 1;
          Context.current().cancellationSignal.addEventListener('abort', () =>
            resolve({ delivered: false, suppressed: false }),
          );
        }),
    );
    assert.ok(started >= 1, 'the alert was sent');
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(String((err.cause?.cause as Error | undefined)?.message), /disk on fire/);
  });

  it('a cancelled run sends no alert', async function () {
    const alerts: AlertInput[] = [];
    const { err } = await failingRun(
      async (a) => {
        alerts.push(a);
        return { delivered: true, suppressed: false };
      },
      { cancelFirstChunk: true },
    );
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
    assert.deepEqual(alerts, []);
  });
});
