// An activity failure keeps its reason through a retry. The server keeps a retried activity's last failure only up
// to a size limit and replaces a larger one by "Failure exceeds size limit."; a storage failure wrapping the AWS
// SDK's error easily passes it. On a real Temporal server (the pinned CLI) with the real workflow bundle: a chunk
// that fails once with such a chain is retried, and the retried attempt's started event carries the storage
// reason when the worker bounds failures (as `durable-train worker` does), and only the size error when it does not.
import * as assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { boundFailure, BoundedFailures } from '../../activities/bounded-failures';
import { storageUnavailable } from '../../activities/failures';
import { StorageUnavailableError } from '../../checkpoint';
import { trainingWorkflow } from '../../workflows/training';
import { useWorkflowEnv } from './env';
import { MockTraining, mockSpec } from './mock-training';

const EventType = temporal.api.enums.v1.EventType;

/** What the S3 store throws on a 503 window: its own error around the SDK's, each with a long stack. */
function s3Outage(): unknown {
  const sdk = new Error(`${'<Error><Code>ServiceUnavailable</Code><Message>Slow down</Message></Error>'.repeat(40)}`);
  sdk.name = 'ServiceUnavailable';
  sdk.stack = `${sdk.name}: ${sdk.message}\n${'    at deserializeAws_restXmlPutObject (node_modules/@aws-sdk/x.js:1:1)\n'.repeat(60)}`;
  const store = new StorageUnavailableError(
    's3 PUT s3://bucket/run/run/blobs/abc failed after 3 attempts: ServiceUnavailable (HTTP 503): Slow down',
    { op: 'PUT', key: 'blobs/abc', attempts: 3, retryable: true, code: 'ServiceUnavailable', status: 503 },
    { cause: sdk },
  );
  store.stack = `${store.stack ?? ''}\n${'    at S3Store.put (dist/checkpoint/store/s3.js:1:1)\n'.repeat(40)}`;
  return storageUnavailable(store, 'checkpoint commit of run bounded');
}

describe('activity failures keep their reason through a retry (real server, mocked activities)', function () {
  this.timeout(60_000);
  const wf = useWorkflowEnv();
  let queues = 0;

  /** Runs a 2-chunk run whose first chunk fails once with s3Outage(); the retried attempt's lastFailure message. */
  async function retriedFailure(bounded: boolean): Promise<string> {
    const mock = new MockTraining({ totalSteps: 4, stepsPerEpoch: 4 });
    const base = mock.activities();
    let failed = false;
    const taskQueue = `bounded-${process.pid}-${++queues}`;
    const worker = await Worker.create({
      connection: wf.env.nativeConnection,
      taskQueue,
      workflowBundle: wf.bundle,
      activities: {
        ...base,
        trainChunk: async (input: Parameters<typeof base.trainChunk>[0]) => {
          if (!failed) {
            failed = true;
            throw s3Outage();
          }
          return base.trainChunk(input);
        },
      },
      ...(bounded ? { interceptors: { activity: [() => ({ inbound: new BoundedFailures() })] } } : {}),
    });
    return worker.runUntil(async () => {
      const handle = await wf.env.client.workflow.start(trainingWorkflow, {
        taskQueue,
        workflowId: `bounded-run-${queues}`,
        args: [{ spec: mockSpec() }],
      });
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      const history = await handle.fetchHistory();
      const retried = (history.events ?? [])
        .filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
        .map((e) => e.activityTaskStartedEventAttributes)
        .filter((a) => (a?.attempt ?? 1) >= 2);
      assert.equal(retried.length, 1, 'one retried attempt');
      return retried[0]?.lastFailure?.message ?? '';
    });
  }

  it('unbounded, the server keeps only "Failure exceeds size limit." (the limit this guards against)', async function () {
    assert.equal(await retriedFailure(false), 'Failure exceeds size limit.');
  });

  it('bounded by the worker interceptor, the retried attempt names the storage failure and its HTTP status', async function () {
    const message = await retriedFailure(true);
    assert.match(message, /^checkpoint commit of run bounded: storage unavailable: s3 PUT .* \(HTTP 503\)/);
  });

  it('bounding keeps the class, type, retry flag and details, cuts the chain, and leaves non-errors alone', function () {
    const err = boundFailure(s3Outage());
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, 'StorageUnavailable');
    assert.equal(err.nonRetryable, false);
    assert.deepEqual(err.details, [{ code: 'ServiceUnavailable' }]);
    const store = err.cause as Error;
    assert.ok(store instanceof StorageUnavailableError);
    assert.ok((store.cause as Error).message.length <= 300);
    assert.ok((err.stack ?? '').split('\n').length <= 6);
    const deep = new Error('top', {
      cause: new Error('a', { cause: new Error('b', { cause: new Error('c', { cause: new Error('d') }) }) }),
    });
    boundFailure(deep);
    const chain: string[] = [];
    for (let e: unknown = deep; e instanceof Error; e = e.cause) chain.push(e.message);
    assert.deepEqual(chain, ['top', 'a', 'b', 'c (deeper causes dropped)']);
    assert.equal(boundFailure('plain string'), 'plain string');
  });
});
