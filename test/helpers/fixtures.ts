// Shared fixtures for integration tests: one dev server per file, workers that never outlive their test, and the
// small specs most tests train.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import type { MetricsLog } from '../../telemetry/metrics-log';
import { PACED_WORKER, spawnWorker, startCluster, waitFor, type TestCluster, type WorkerProcess } from './cluster';

/** A small MLP run: 600 examples, 2 epochs of 12 steps, chunks of 5 (5 chunks). Fields are replaced, not merged. */
/** A run's metrics log without samples/s (wall-clock: it differs between any two runs), to compare two runs' curves. */
export const deterministicLog = (log: MetricsLog) => ({
  rows: log.rows.map(({ samplesPerSec: _sps, ...r }) => r),
  evals: log.evals,
});

/**
 * The heartbeat timeout of test runs (spec.heartbeatTimeoutSeconds; the product default is longer): a SIGKILLed
 * worker is noticed after 3 s instead of 10. Safe at any step length: a worker heartbeats every second while its
 * training process lives (activities/trainer-process/supervisor.ts).
 */
export const TEST_HEARTBEAT_S = 3;

export function smallSpec(over: Record<string, unknown> = {}) {
  return {
    model: 'mnist-mlp',
    dataset: { name: 'mnist', trainLimit: 600, testLimit: 200, validationFraction: 0 },
    epochs: 2,
    batchSize: 50,
    chunkSteps: 5,
    seed: 11,
    optimizer: { name: 'adam', learningRate: 0.003 },
    checkpoint: { storage: 'file://.data/checkpoints' },
    heartbeatTimeoutSeconds: TEST_HEARTBEAT_S,
    ...over,
  };
}

export interface ClusterFixture {
  /** The dev server of this describe block (started in `before`). */
  readonly cluster: TestCluster;
  /**
   * A worker for the current test, killed (SIGKILL) in `afterEach`, or in `after` when started from `before`:
   * a worker left alive would pick up the next test's run.
   */
  worker(opts?: { env?: NodeJS.ProcessEnv; paced?: { stepMs?: number; commitMs?: number } }): Promise<WorkerProcess>;
  /** The manifests of a run's checkpoints on local disk (file://.data/checkpoints), parsed. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  manifests(runId: string): any[];
}

/** Registers mocha hooks for one dev server (per describe block) and per-test workers. */
export function useCluster(opts: { ui?: boolean } = {}): ClusterFixture {
  let cluster: TestCluster | undefined;
  let inTest = false;
  const testWorkers: WorkerProcess[] = [];
  const suiteWorkers: WorkerProcess[] = [];

  before(async function () {
    cluster = await startCluster(opts);
  });
  beforeEach(function () {
    inTest = true;
  });
  afterEach(async function () {
    inTest = false;
    for (const w of testWorkers.splice(0)) await w.kill('SIGKILL');
  });
  after(async function () {
    for (const w of [...testWorkers.splice(0), ...suiteWorkers.splice(0)]) await w.kill('SIGKILL');
    await cluster?.close();
  });

  return {
    get cluster() {
      if (!cluster) throw new Error('useCluster: the cluster starts in before()');
      return cluster;
    },
    async worker(o = {}) {
      if (!cluster) throw new Error('useCluster: the cluster starts in before()');
      const paced = o.paced
        ? {
            DURABLE_TRAIN_STEP_DELAY_MS: String(o.paced.stepMs ?? 0),
            DURABLE_TRAIN_COMMIT_DELAY_MS: String(o.paced.commitMs ?? 0),
          }
        : {};
      const w = spawnWorker(cluster, { env: { ...o.env, ...paced }, script: o.paced ? PACED_WORKER : undefined });
      (inTest ? testWorkers : suiteWorkers).push(w);
      await w.ready;
      return w;
    },
    manifests(runId) {
      if (!cluster) throw new Error('useCluster: the cluster starts in before()');
      const dir = path.join(cluster.dir, '.data', 'checkpoints', runId, 'manifests');
      return fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
    },
  };
}

/** The running trainChunk of a run as the server sees it: its attempt, worker, last heartbeat's step and time. */
export async function runningChunk(handle: WorkflowHandle): Promise<{
  step: number | null;
  attempt: number;
  identity: string;
  lastHeartbeatMs: number | null;
} | null> {
  const d = await handle.describe();
  if (d.status.name !== 'RUNNING') throw new Error(`run ${handle.workflowId} is ${d.status.name}`);
  const a = d.raw.pendingActivities?.find((p) => p.activityType?.name === 'trainChunk');
  if (!a) return null;
  const data = a.heartbeatDetails?.payloads?.[0]?.data;
  const details = data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { step?: number }) : null;
  return {
    step: details?.step ?? null,
    attempt: a.attempt ?? 1,
    identity: a.lastWorkerIdentity ?? '',
    lastHeartbeatMs: optionalTsToMs(a.lastHeartbeatTime) ?? null,
  };
}

/**
 * Waits until a chunk of the run, running on `worker` (any worker when omitted), has heartbeated after `sinceMs`:
 * it is inside a chunk and training, the moment to kill or disturb it.
 */
export function chunkProgressed(
  handle: WorkflowHandle,
  sinceMs: number,
  worker?: WorkerProcess,
): Promise<{ step: number | null; identity: string }> {
  return waitFor(
    `a heartbeat of a chunk${worker ? ` on worker ${worker.proc.pid}` : ''}`,
    async () => {
      const c = await runningChunk(handle);
      if (!c || c.lastHeartbeatMs === null || c.lastHeartbeatMs <= sinceMs) return null;
      return !worker || c.identity.startsWith(`${worker.proc.pid}@`) ? c : null;
    },
    120_000,
    50,
  );
}
