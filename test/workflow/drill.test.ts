// The drill workflow's logic, in process (real workflow bundle on a real Temporal test server, mocked activities): it
// reports to a running run's progress, alerts once on a failed drill and never fails because an alert cannot be sent,
// removes its own schedule only when the run has ended, and passes a refusal of its input through unretried.
import * as assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import type { AlertInput, AlertResult } from '../../activities/alert-types';
import {
  DrillFailureTypes,
  type DrillActivities,
  type DrillInput,
  type DrillReport,
} from '../../activities/drill-types';
import { progressQuery } from '../../workflows/definitions';
import { drillWorkflow } from '../../workflows/drill';
import { trainingWorkflow } from '../../workflows/training';
import { MockTraining, mockSpec } from './mock-training';
import { useWorkflowEnv } from './env';

function report(over: Partial<DrillReport> = {}): DrillReport {
  return {
    runId: 'r',
    checkpoint: { id: 'step-000000005-aaaaaaaa', step: 5 },
    compared: { id: 'step-000000010-bbbbbbbb', step: 10 },
    restoreSeconds: 0.1,
    stepsReplayed: 5,
    fromStep: 5,
    toStep: 10,
    blobsCompared: 7,
    verified: true,
    differences: [],
    skipped: [],
    specChanged: false,
    backend: 'mock',
    at: '2026-12-01T00:00:00.000Z',
    ...over,
  };
}

const FAILED = report({
  verified: false,
  differences: [{ checkpointId: 'step-000000010-bbbbbbbb', name: 'model/dense/kernel', reason: 'element 3 differs' }],
});

class MockDrill {
  readonly drillCalls: DrillInput[] = [];
  readonly alerts: AlertInput[] = [];
  readonly removed: string[] = [];
  alertAttempts = 0;
  constructor(
    private readonly result: DrillReport | (() => never),
    private readonly alertFails = false,
  ) {}
  activities(): DrillActivities & { sendAlert(i: AlertInput): Promise<AlertResult> } {
    return {
      runDrill: async (input) => {
        this.drillCalls.push(input);
        if (typeof this.result === 'function') this.result();
        return { ...(this.result as DrillReport), runId: input.runId };
      },
      removeDrillSchedule: async ({ scheduleId }) => {
        this.removed.push(scheduleId);
        return true;
      },
      sendAlert: async (input) => {
        this.alertAttempts++;
        if (this.alertFails) throw new Error('webhook down');
        this.alerts.push(input);
        return { delivered: true, suppressed: false };
      },
    };
  }
}

describe('drill workflow in process (mocked activities)', function () {
  this.timeout(120_000);
  const wf = useWorkflowEnv();
  let queues = 0;

  async function withWorker<T>(drill: MockDrill, training: MockTraining | null, body: (tq: string) => Promise<T>) {
    const taskQueue = `drill-${process.pid}-${++queues}`;
    const worker = await Worker.create({
      connection: wf.env.nativeConnection,
      taskQueue,
      workflowBundle: wf.bundle,
      activities: { ...(training?.activities() ?? {}), ...drill.activities() },
      maxHeartbeatThrottleInterval: '50ms',
    });
    return worker.runUntil(() => body(taskQueue));
  }
  const drillOf = (tq: string, input: Partial<DrillInput> & { runId: string }, id = `drill-${queues}`) =>
    wf.env.client.workflow.execute(drillWorkflow, {
      taskQueue: tq,
      workflowId: id,
      args: [{ spec: mockSpec(), ...input }],
    });

  it('a verified drill of a running run is recorded in its progress; no alert; its schedule stays', async function () {
    const drill = new MockDrill(report());
    const training = new MockTraining({ totalSteps: 8, stepsPerEpoch: 4 });
    const held = training.hold(0);
    await withWorker(drill, training, async (tq) => {
      const run = await wf.env.client.workflow.start(trainingWorkflow, {
        taskQueue: tq,
        workflowId: 'running-run',
        args: [{ spec: mockSpec() }],
      });
      await held.started;
      const before = await run.query(progressQuery);
      assert.equal(before.lastDrill, undefined, 'no drill recorded yet');
      const result = await drillOf(tq, { runId: 'running-run', scheduleId: 'drill-running-run' }, 'd1');
      assert.equal(result.verified, true);
      assert.equal(result.runEnded, false);
      assert.equal(result.alerted, null);
      assert.equal(result.scheduleRemoved, false);
      const p = await run.query(progressQuery);
      assert.deepEqual(p.lastDrill, {
        drillId: 'd1',
        at: '2026-12-01T00:00:00.000Z',
        verified: true,
        checkpointId: 'step-000000005-aaaaaaaa',
        comparedId: 'step-000000010-bbbbbbbb',
        stepsReplayed: 5,
        problem: null,
      });
      held.release();
      const done = await run.result();
      assert.equal(done.status, 'completed');
    });
    assert.equal(drill.alerts.length, 0);
    assert.deepEqual(drill.removed, [], 'the run is running: the schedule stays');
  });

  it('a failed scheduled drill of an ended run: one alert naming run and checkpoint, then it removes its schedule', async function () {
    const drill = new MockDrill(FAILED);
    const result = await withWorker(drill, null, (tq) =>
      drillOf(tq, { runId: 'gone', scheduleId: 'drill-gone' }, 'd2'),
    );
    assert.equal(result.verified, false);
    assert.equal(result.runEnded, true);
    assert.equal(result.alerted, true);
    assert.equal(result.scheduleRemoved, true);
    assert.equal(drill.alerts.length, 1);
    const a = drill.alerts[0];
    assert.equal(a.kind, 'drill-failed');
    assert.equal(a.runId, 'gone');
    assert.equal(a.checkpointId, 'step-000000010-bbbbbbbb');
    assert.match(a.message, /gone.*model\/dense\/kernel/);
    assert.deepEqual(drill.removed, ['drill-gone']);
  });

  it('a drill started by hand never removes a schedule, even when the run has ended', async function () {
    const drill = new MockDrill(report());
    const result = await withWorker(drill, null, (tq) => drillOf(tq, { runId: 'ended' }, 'd3'));
    assert.equal(result.runEnded, true);
    assert.deepEqual(drill.removed, []);
  });

  it('an alert that cannot be sent is tried three times and does not fail the drill result', async function () {
    const drill = new MockDrill(FAILED, true);
    const result = await withWorker(drill, null, (tq) => drillOf(tq, { runId: 'r' }, 'd4'));
    assert.equal(result.verified, false);
    assert.equal(result.alerted, false);
    assert.equal(drill.alertAttempts, 3);
  });

  it('a refused input (nothing later to compare with) fails the drill at once, unretried, with its type', async function () {
    const drill = new MockDrill(() => {
      throw ApplicationFailure.create({
        type: DrillFailureTypes.NoLaterCheckpoint,
        message: 'nothing later',
        nonRetryable: true,
      });
    });
    await withWorker(drill, null, async (tq) => {
      await assert.rejects(drillOf(tq, { runId: 'r' }, 'd5'), (err: unknown) => {
        assert.ok(err instanceof WorkflowFailedError);
        const cause = err.cause?.cause as ApplicationFailure | undefined;
        assert.equal(cause?.type, DrillFailureTypes.NoLaterCheckpoint);
        return true;
      });
    });
    assert.equal(drill.drillCalls.length, 1);
    assert.equal(drill.alerts.length, 0);
  });
});
