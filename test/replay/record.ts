// Records the event histories that the replay test (replay.test.ts) runs the current workflow code against: one
// representative run of each kind, on a real dev server with real worker processes, written to
// test/replay/histories/<workflowId>[.<execution>].json in the JSON form of `temporal workflow show --output json`.
//
//   npm run record-histories                  # all runs (builds first)
//   node dist/test/replay/record.js stopped   # only the named runs (after `npm run build`)
//
// Re-record only for the reasons in docs/workflow-changes.md: a new history must come from code that is already
// released, never from the change it is meant to guard.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { hasSearchAttributes } from '../../cli/start';
import { PROJECT_ROOT } from '../../cli/tools';
import { validateSpec } from '../../spec';
import {
  pauseSignal,
  progressQuery,
  resumeSignal,
  setLearningRateUpdate,
  stopSignal,
  TRAINING_WORKFLOW,
} from '../../workflows/definitions';
import type { RunProgress, RunResult } from '../../workflows/progress';
import type { TrainingInput } from '../../workflows/training';
import { startCluster, waitFor, type TestCluster, type WorkerProcess } from '../helpers/cluster';
import { historyToJson, type History } from './history-json';

export const HISTORIES_DIR = path.join(PROJECT_ROOT, 'test', 'replay', 'histories');

/** Small and fast: 40 steps in 4 chunks of 10. */
const baseSpec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 2000, testLimit: 200 },
  epochs: 1,
  batchSize: 50,
  chunkSteps: 10,
  seed: 7,
  optimizer: { name: 'adam', learningRate: 0.003 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 2 },
};
/** Each checkpoint commit of the recording worker takes this much longer (see paced-worker.ts). */
const COMMIT_DELAY_MS = 1000;

interface Ctx {
  cluster: TestCluster;
  worker: WorkerProcess;
}

/** Thrown when a run did not turn out as the kind it should represent (e.g. it finished before it could be paused). */
class NotRepresentative extends Error {}

interface Scenario {
  /** The workflow id, and the history file's name. */
  name: string;
  what: string;
  /** Runs the workflow to its end and checks it is the kind it stands for. */
  run(ctx: Ctx): Promise<WorkflowHandle>;
}

/** The real worker entry with paced commits; `spawnWorker` always starts dist/worker.js, hence this copy of it. */
function spawnRecordingWorker(cluster: TestCluster, env: NodeJS.ProcessEnv = {}): WorkerProcess {
  const proc = spawn(process.execPath, [path.join(__dirname, 'paced-worker.js')], {
    cwd: cluster.dir,
    env: { ...cluster.env, DURABLE_TRAIN_COMMIT_DELAY_MS: String(COMMIT_DELAY_MS), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const ready = waitFor('the worker to be ready', async () => {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`worker exited before it was ready:\n${out}`);
    return out.includes('durable-train worker:');
  }).then(() => undefined);
  ready.catch(() => undefined);
  return {
    proc,
    output: () => out,
    ready,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited;
    },
  };
}

/** Starts a run as `durable-train start` does (search attributes, spec memo); workflow id = run id = `name`. */
async function start(
  ctx: Ctx,
  name: string,
  spec: object,
  extra: Partial<TrainingInput> = {},
): Promise<WorkflowHandle> {
  const valid = validateSpec(spec);
  const input: TrainingInput = {
    spec: valid,
    from: null,
    searchAttributes: await hasSearchAttributes(ctx.cluster.client, 'default'),
    ...extra,
  };
  return ctx.cluster.client.workflow.start(TRAINING_WORKFLOW, {
    workflowId: name,
    taskQueue: ctx.cluster.taskQueue,
    args: [input],
    memo: { spec: valid },
  });
}

const progressOf = (h: WorkflowHandle): Promise<RunProgress> => h.query(progressQuery);

/** Waits until the first chunk is recorded and the next one runs: the moment to steer the run. */
async function midRun(h: WorkflowHandle): Promise<void> {
  const ended = await waitFor(
    'the second chunk to run',
    async () => {
      const q = await progressOf(h);
      if (q.result) return q.result.status;
      if (q.chunks < 1) return null;
      const pending = (await h.describe()).raw.pendingActivities ?? [];
      const running = pending.some(
        (a) =>
          a.activityType?.name === 'trainChunk' &&
          a.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
      );
      return running ? 'running' : null;
    },
    120_000,
    20,
  );
  if (ended !== 'running') throw new NotRepresentative(`the run ended before it could be steered (${ended})`);
}

async function resultOf(h: WorkflowHandle): Promise<RunResult> {
  return (await h.result()) as RunResult;
}

function expect(cond: unknown, what: string): void {
  if (!cond) throw new NotRepresentative(what);
}

async function eventTypes(h: WorkflowHandle): Promise<string[]> {
  const history = await h.fetchHistory();
  return (history.events ?? []).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0]);
}

/** The steering reached a chunk in flight: the workflow asked the activity to stop early. */
async function expectChunkCut(h: WorkflowHandle): Promise<void> {
  const types = await eventTypes(h);
  expect(
    types.includes('EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED'),
    'the signal landed while a chunk was running (an activity cancellation in the history)',
  );
}

const scenarios: Scenario[] = [
  {
    name: 'plain',
    what: 'a run from start to completion',
    async run(ctx) {
      const h = await start(ctx, 'plain', baseSpec);
      const r = await resultOf(h);
      expect(r.status === 'completed' && r.step === 40, `completed at step 40, got ${r.status} at ${r.step}`);
      return h;
    },
  },
  {
    name: 'paused-resumed',
    what: 'pause signal while a chunk runs, status paused in the progress query, resume signal, completion',
    async run(ctx) {
      const h = await start(ctx, 'paused-resumed', baseSpec);
      await midRun(h);
      await h.signal(pauseSignal);
      const p = await waitFor('status paused', async () => {
        const q = await progressOf(h);
        return q.status === 'paused' || q.result ? q : null;
      });
      expect(p.status === 'paused' && p.step < p.totalSteps, `paused before the end, got ${p.status} at ${p.step}`);
      await h.signal(resumeSignal);
      const r = await resultOf(h);
      expect(r.status === 'completed', `completed after resume, got ${r.status}`);
      await expectChunkCut(h);
      return h;
    },
  },
  {
    name: 'set-lr',
    what: 'setLearningRate update accepted while a chunk runs, applied from the next chunk, completion',
    async run(ctx) {
      const h = await start(ctx, 'set-lr', baseSpec);
      await midRun(h);
      const applied = await h.executeUpdate(setLearningRateUpdate, { args: [0.001] });
      expect(applied === 0.001, `update returned ${applied}`);
      const r = await resultOf(h);
      const p = await progressOf(h);
      expect(r.status === 'completed', `completed, got ${r.status}`);
      expect(p.learningRateChanges.length === 1, `one change, got ${JSON.stringify(p.learningRateChanges)}`);
      expect(p.learningRate === 0.001, `the last chunk trained at 0.001, got ${p.learningRate}`);
      const types = await eventTypes(h);
      expect(types.includes('EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED'), 'the update is in the history');
      return h;
    },
  },
  {
    name: 'continue-as-new',
    what: 'continue-as-new after 2 chunks (chunksPerRun), state carried into the next execution',
    async run(ctx) {
      const h = await start(ctx, 'continue-as-new', baseSpec, { chunksPerRun: 2 });
      const r = await resultOf(h);
      const p = await progressOf(h);
      expect(r.status === 'completed' && r.chunks === 4, `completed in 4 chunks, got ${r.status}, ${r.chunks}`);
      expect(p.continuedAsNew === 1, `continued as new once, got ${p.continuedAsNew}`);
      return h;
    },
  },
  {
    name: 'worker-killed',
    what: 'the worker SIGKILLed in the middle of a checkpoint commit; a new worker retries the chunk, completion',
    async run(ctx) {
      // The failpoint makes the worker SIGKILL itself at a known place (mid-commit of step 20, after the blobs, before
      // the manifest), so the kill always lands inside a chunk.
      await ctx.worker.kill('SIGTERM');
      const doomed = spawnRecordingWorker(ctx.cluster, { DURABLE_TRAIN_FAILPOINT: 'kill-before-manifest:20' });
      await doomed.ready;
      const h = await start(ctx, 'worker-killed', baseSpec);
      const how = await Promise.race([doomed.exited.then(() => 'killed'), h.result().then(() => 'finished')]);
      await doomed.kill('SIGKILL'); // dead already, unless the run somehow finished first
      ctx.worker = spawnRecordingWorker(ctx.cluster);
      await ctx.worker.ready;
      expect(how === 'killed', 'the worker was killed before the run finished');
      expect(
        /failpoint: killing myself during the commit of step \d+/.test(doomed.output()),
        `the failpoint fired mid-commit:\n${doomed.output()}`,
      );
      expect(
        doomed.proc.exitCode === null && doomed.proc.signalCode === 'SIGKILL',
        `the worker died of SIGKILL, got exit ${doomed.proc.exitCode} signal ${doomed.proc.signalCode}`,
      );
      const r = await resultOf(h);
      expect(r.status === 'completed', `completed, got ${r.status}`);
      expect(r.recoveries >= 1, `a recovered chunk, got ${r.recoveries} recoveries:\n${doomed.output()}`);
      return h;
    },
  },
  {
    name: 'stopped',
    what: 'stop signal while a chunk runs, final checkpoint, status stopped',
    async run(ctx) {
      const h = await start(ctx, 'stopped', baseSpec);
      await midRun(h);
      await h.signal(stopSignal);
      const r = await resultOf(h);
      expect(r.status === 'stopped' && r.step < r.totalSteps, `stopped before the end, got ${r.status} at ${r.step}`);
      await expectChunkCut(h);
      return h;
    },
  },
  {
    name: 'cancelled',
    what: 'Temporal cancellation while a chunk runs: the chunk checkpoints, the workflow ends cancelled',
    async run(ctx) {
      const h = await start(ctx, 'cancelled', baseSpec);
      await midRun(h);
      await h.cancel();
      const err = await h.result().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err !== null, 'the run ended cancelled, not completed');
      const d = await h.describe();
      expect(d.status.name === 'CANCELLED', `status CANCELLED, got ${d.status.name}`);
      await expectChunkCut(h);
      return h;
    },
  },
  {
    name: 'distributed',
    what: 'a distributed run: rounds of 2 replica activities and a sync, to completion',
    async run(ctx) {
      // 1000 examples a replica: 20 steps of 50 an epoch, two rounds of 10.
      const h = await start(ctx, 'distributed', { ...baseSpec, distributed: { replicas: 2, syncEverySteps: 10 } });
      const r = await resultOf(h);
      expect(r.status === 'completed' && r.step === 20, `completed at step 20, got ${r.status} at ${r.step}`);
      const types = await eventTypes(h);
      expect(
        types.filter((t) => t === 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED').length >= 7,
        'prepare, 2x(2 replicas + sync)',
      );
      return h;
    },
  },
  {
    name: 'run-failed',
    what: 'a run that fails (its storage path runs through a regular file): the run-failed alert activity, then failure',
    async run(ctx) {
      const blocker = path.join(ctx.cluster.dir, 'not-a-directory');
      fs.writeFileSync(blocker, 'a regular file where the checkpoint directory should be');
      const h = await start(ctx, 'run-failed', {
        ...baseSpec,
        checkpoint: { storage: `file://${blocker}/checkpoints`, keepLatest: 2 },
      });
      const err = await h.result().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err !== null, 'the run failed');
      const types = await eventTypes(h);
      expect(types.includes('EVENT_TYPE_MARKER_RECORDED'), 'the alert patch marker is in the history');
      expect(types.includes('EVENT_TYPE_WORKFLOW_EXECUTION_FAILED'), 'the run ended failed');
      return h;
    },
  },
];

/** The histories of every execution of the workflow, oldest first (following the continue-as-new chain). */
async function historiesOf(ctx: Ctx, h: WorkflowHandle): Promise<string[]> {
  const first = await ctx.cluster.client.workflow.getHandle(h.workflowId).describe();
  let runId: string | null | undefined = first.raw.workflowExecutionInfo?.firstRunId;
  if (!runId) throw new Error(`no first run id for ${h.workflowId}`);
  const out: string[] = [];
  while (runId) {
    const history: History = await ctx.cluster.client.workflow.getHandle(h.workflowId, runId).fetchHistory();
    out.push(historyToJson(history));
    const events = history.events ?? [];
    runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
  }
  return out;
}

function writeHistories(name: string, histories: string[]): string[] {
  for (const f of fs.readdirSync(HISTORIES_DIR)) {
    if (f === `${name}.json` || (f.startsWith(`${name}.`) && /^\.\d+\.json$/.test(f.slice(name.length)))) {
      fs.rmSync(path.join(HISTORIES_DIR, f));
    }
  }
  const files = histories.map((_, i) => (histories.length === 1 ? `${name}.json` : `${name}.${i + 1}.json`));
  histories.forEach((text, i) => fs.writeFileSync(path.join(HISTORIES_DIR, files[i]), text));
  return files;
}

/** Every kind of run the replay test expects a history of. */
export const RECORDED_RUNS = scenarios.map((s) => s.name);

async function main(argv: string[]): Promise<void> {
  const unknown = argv.filter((a) => !scenarios.some((s) => s.name === a));
  if (unknown.length) {
    throw new Error(`unknown run ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}`);
  }
  const chosen = argv.length ? scenarios.filter((s) => argv.includes(s.name)) : scenarios;
  fs.mkdirSync(HISTORIES_DIR, { recursive: true });
  const cluster = await startCluster();
  const ctx: Ctx = { cluster, worker: spawnRecordingWorker(cluster) };
  try {
    await ctx.worker.ready;
    for (const s of chosen) {
      let handle: WorkflowHandle | null = null;
      for (let attempt = 1; !handle; attempt++) {
        try {
          handle = await s.run(ctx);
        } catch (err) {
          if (!(err instanceof NotRepresentative) || attempt >= 3) throw err;
          console.error(`record: ${s.name}: not representative (${err.message}); again`);
          // Same workflow id again, from scratch: the old run is closed, its checkpoints go.
          await ctx.cluster.client.workflow
            .getHandle(s.name)
            .terminate('re-recording')
            .catch(() => undefined);
          fs.rmSync(path.join(cluster.dir, '.data', 'checkpoints', s.name), { recursive: true, force: true });
        }
      }
      const files = writeHistories(s.name, await historiesOf(ctx, handle));
      const sizes = files.map((f) => `${f} (${Math.round(fs.statSync(path.join(HISTORIES_DIR, f)).size / 1024)} KiB)`);
      console.error(`record: ${s.name}: ${s.what}\n  -> ${sizes.join(', ')}`);
    }
  } finally {
    await ctx.worker.kill('SIGTERM');
    await cluster.close();
    fs.rmSync(cluster.dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`record: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exit(1);
    },
  );
}
