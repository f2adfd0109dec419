// `drill RUN_ID [--checkpoint CKPT] [--steps K]`: a recovery drill of the run on the workers (restore a checkpoint in a
// fresh trainer, replay to the next stored checkpoint, compare bit for bit); exit 0 when verified, 1 when not.
// `drill RUN_ID --every 6h` schedules it (a Temporal Schedule, in the Web UI's Schedules page), `drill --list RUN_ID`
// shows past drills and the schedule, `drill --remove RUN_ID` deletes the schedule.
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { DrillFailureTypes, drillScheduleId, type DrillInput, type DrillResult } from '../activities/drill-types';
import { FailureTypes } from '../activities/types';
import { checkDrillRequest } from '../activities/drill-plan';
import { DRILL_WORKFLOW } from '../workflows/definitions';
import { managerForRun } from './checkpoints';
import { checkpointIdArg, CliError, EXIT, rootCause, viewRun, type Out } from './common';
import { connectClient, temporalSettings, type TemporalSettings } from './connection';
import { defineCommand, RUN_ID_ARGUMENT } from './command';

export interface DrillOptions {
  runId: string;
  checkpoint?: string;
  steps?: number;
  every?: string;
}

/** Memo key that ties a drill workflow to its run (ids alone are ambiguous: run ids may contain '-'). */
const DRILL_OF = 'drillOf';
const SCHEDULED = 'drillScheduled';
const LIST_LIMIT = 20;

/** `--steps K`: a positive integer, or exit 2. */
export function parseDrillSteps(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(`drill: --steps must be an integer >= 1, got ${raw}`, EXIT.usage);
  return n;
}

/** `--every 6h` (ms-style durations: 90s, 10m, 6h, 1d) in milliseconds, at least one second; or exit 2. */
export function parseEvery(raw: string): number {
  let ms: number;
  try {
    ms = msToNumber(raw as Parameters<typeof msToNumber>[0]);
  } catch {
    ms = NaN;
  }
  if (!Number.isFinite(ms) || ms < 1000)
    throw new CliError(
      `drill: --every must be a duration of at least 1s (e.g. 30s, 10m, 6h, 1d), got ${raw}`,
      EXIT.usage,
    );
  return ms;
}

async function drillInput(client: Client, o: DrillOptions): Promise<DrillInput> {
  // The run's spec as it was started (the workflow's memo): the one its checkpoints were trained with.
  const view = await viewRun(client, o.runId, { query: false });
  if (!view.spec)
    throw new CliError(`run ${o.runId} carries no spec in its memo: not a durable-train run?`, EXIT.usage);
  return { runId: o.runId, spec: view.spec, checkpointId: o.checkpoint ?? null, steps: o.steps ?? null };
}

export function describeDrill(r: DrillResult): string {
  const head =
    `drill ${r.drillId} of run ${r.runId}: ${r.verified ? 'verified' : 'FAILED'}\n` +
    `  restored ${r.checkpoint?.id ?? '-'} (step ${r.fromStep}) in a fresh trainer in ${r.restoreSeconds.toFixed(3)} s, ` +
    `replayed steps ${r.fromStep}..${r.toStep} (${r.stepsReplayed}) on ${r.backend || '-'}\n` +
    `  compared with ${r.compared?.id ?? '-'} (step ${r.toStep}): ${r.blobsCompared} blobs and the training state` +
    (r.verified ? ', bit for bit identical' : '');
  const lines = [head];
  for (const d of r.differences) lines.push(`  differs: ${d.checkpointId} ${d.name}: ${d.reason}`);
  if (r.skipped.length) lines.push(`  skipped damaged: ${r.skipped.map((s) => `${s.id} (${s.reason})`).join('; ')}`);
  if (r.specChanged) lines.push('  note: the run spec differs from the one that wrote the restored checkpoint');
  if (r.alerted !== null) lines.push(`  alert ${r.alerted ? 'sent' : 'not delivered'}`);
  if (r.scheduleRemoved) lines.push('  the run has ended: its drill schedule was removed');
  return lines.join('\n');
}

/** Runs one drill and waits for it; exit 0 when verified, 1 when not. */
export async function drillCommand(client: Client, settings: TemporalSettings, out: Out, o: DrillOptions) {
  const input = await drillInput(client, o);
  await checkRequest(client, input);
  const drillId = `drill-${o.runId}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const handle = await client.workflow.start(DRILL_WORKFLOW, {
    workflowId: drillId,
    taskQueue: settings.taskQueue,
    args: [input],
    memo: { [DRILL_OF]: o.runId },
  });
  if (!out.json) process.stderr.write(`drill ${drillId} started on task queue ${settings.taskQueue}\n`);
  let result: DrillResult;
  try {
    result = (await handle.result()) as DrillResult;
  } catch (err) {
    throw drillFailure(err, o.runId);
  }
  out.emit(result, () => describeDrill(result));
  return result.verified ? EXIT.ok : EXIT.check;
}

/**
 * Refuses, before any drill workflow starts, a request the checkpoint list already answers: a checkpoint the run
 * does not have (exit 3), `--steps K` with no checkpoint K steps later (exit 2). Storage that cannot be listed from
 * here is left to the drill on the workers.
 */
async function checkRequest(client: Client, input: DrillInput): Promise<void> {
  let all;
  try {
    const manager = await managerForRun(client, input.runId, input.spec.checkpoint.storage);
    all = await manager.list();
  } catch {
    return;
  }
  try {
    checkDrillRequest(all, input.checkpointId ?? null, input.steps ?? null, input.spec, `run ${input.runId}`);
  } catch (err) {
    if (err instanceof ApplicationFailure) throw failureExit(err.type, `drill of run ${input.runId}: ${err.message}`);
    throw err;
  }
}

/** A drill that could not run: what the user asked for does not exist (3) or cannot be drilled (2). */
function drillFailure(err: unknown, runId: string): unknown {
  if (!(err instanceof WorkflowFailedError)) return err;
  let type: string | undefined;
  for (let e: unknown = err.cause; e; e = (e as Error).cause)
    if (e instanceof ApplicationFailure) type = e.type ?? type;
  return failureExit(type, `drill of run ${runId}: ${rootCause(err)}`);
}

/** The exit of a drill refused with failure `type`: not found (3), cannot be drilled (2), or it failed (5). */
function failureExit(type: string | undefined | null, msg: string): CliError {
  if (type === FailureTypes.CheckpointNotFound || type === DrillFailureTypes.NoCheckpoint)
    return new CliError(msg, EXIT.notFound);
  if (
    type === DrillFailureTypes.NoLaterCheckpoint ||
    type === FailureTypes.InvalidSpec ||
    type === FailureTypes.ResumeGuard
  )
    return new CliError(msg, EXIT.usage);
  return new CliError(msg, EXIT.runFailed);
}

/** Creates the run's drill schedule (one per run). */
export async function scheduleDrillCommand(client: Client, settings: TemporalSettings, out: Out, o: DrillOptions) {
  const every = parseEvery(o.every!);
  const scheduleId = drillScheduleId(o.runId);
  const input: DrillInput = { ...(await drillInput(client, o)), scheduleId };
  try {
    await client.schedule.create({
      scheduleId,
      spec: { intervals: [{ every }] },
      action: {
        type: 'startWorkflow',
        workflowType: DRILL_WORKFLOW,
        taskQueue: settings.taskQueue,
        workflowId: scheduleId, // the server appends the scheduled time
        args: [input],
        memo: { [DRILL_OF]: o.runId, [SCHEDULED]: true },
      },
      // Missed drills (no server, no worker) are not made up in a burst: the next one is enough.
      policies: { catchupWindow: '1 minute' },
      memo: { [DRILL_OF]: o.runId },
      state: { note: `recovery drill of run ${o.runId} every ${o.every}; removed when the run ends` },
    });
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning)
      throw new CliError(
        `run ${o.runId} already has a drill schedule (${scheduleId}); \`drill --remove ${o.runId}\` first`,
        EXIT.state,
      );
    throw err;
  }
  out.emit({ runId: o.runId, scheduleId, everyMs: every }, () =>
    [
      `scheduled a recovery drill of run ${o.runId} every ${o.every} (schedule ${scheduleId}, in the Web UI's Schedules page)`,
      `  past drills: durable-train drill --list ${o.runId}; remove: durable-train drill --remove ${o.runId}`,
    ].join('\n'),
  );
  return EXIT.ok;
}

export async function removeDrillScheduleCommand(client: Client, out: Out, runId: string) {
  const scheduleId = drillScheduleId(runId);
  try {
    await client.schedule.getHandle(scheduleId).delete();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw new CliError(`run ${runId} has no drill schedule`, EXIT.notFound);
    throw err;
  }
  out.emit({ runId, scheduleId, removed: true }, () => `removed the drill schedule ${scheduleId} of run ${runId}`);
  return EXIT.ok;
}

interface ListedDrill {
  drillId: string;
  status: string;
  startTime: string;
  scheduled: boolean;
  result: DrillResult | null;
  failure: string | null;
}

/** The run's drill schedule (if any) and its last drills, newest first, with their results. */
export async function listDrillsCommand(client: Client, out: Out, runId: string) {
  let schedule: { scheduleId: string; everyMs: number | null; nextRuns: string[]; paused: boolean } | null = null;
  try {
    const d = await client.schedule.getHandle(drillScheduleId(runId)).describe();
    const every = d.spec.intervals?.[0]?.every;
    schedule = {
      scheduleId: d.scheduleId,
      everyMs: every === undefined ? null : msToNumber(every),
      nextRuns: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
      paused: d.state.paused,
    };
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
  const infos: WorkflowExecutionInfo[] = [];
  const byType = `WorkflowType = '${DRILL_WORKFLOW}'`;
  // Drill ids start with `drill-RUN_ID-` (run ids need no quoting); the memo says exactly which run. Servers before
  // STARTS_WITH (Temporal < 1.23) get the type query alone.
  const collect = async (query: string) => {
    infos.length = 0;
    for await (const w of client.workflow.list({ query })) if (w.memo?.[DRILL_OF] === runId) infos.push(w);
  };
  await collect(`${byType} AND WorkflowId STARTS_WITH '${drillScheduleId(runId)}-'`).catch(async (err: unknown) => {
    if (!/STARTS_WITH|invalid query|not supported/i.test(String((err as Error)?.message))) throw err;
    await collect(byType);
  });
  infos.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
  // Nothing found: a run that does not exist is named as such (exit 3), not listed as one without drills.
  if (!schedule && !infos.length) {
    await client.workflow
      .getHandle(runId)
      .describe()
      .catch((err: unknown) => {
        if (err instanceof WorkflowNotFoundError) throw new CliError(`drill --list: no run ${runId}`, EXIT.notFound);
        throw err;
      });
  }
  const drills: ListedDrill[] = [];
  for (const w of infos.slice(0, LIST_LIMIT)) {
    const handle = client.workflow.getHandle(w.workflowId, w.runId);
    const item: ListedDrill = {
      drillId: w.workflowId,
      status: w.status.name,
      startTime: w.startTime.toISOString(),
      scheduled: w.memo?.[SCHEDULED] === true,
      result: null,
      failure: null,
    };
    if (w.status.name === 'COMPLETED') item.result = (await handle.result()) as DrillResult;
    else if (w.status.name !== 'RUNNING')
      item.failure = await handle.result().then(
        () => null,
        (err: Error) => rootCause(err),
      );
    drills.push(item);
  }
  out.emit({ runId, schedule, drills }, () => {
    const lines = [
      schedule
        ? `run ${runId}: drill schedule ${schedule.scheduleId} every ${(schedule.everyMs ?? 0) / 1000} s${schedule.paused ? ' (paused)' : ''}` +
          (schedule.nextRuns.length ? `, next ${schedule.nextRuns[0]}` : '')
        : `run ${runId}: no drill schedule`,
    ];
    if (!drills.length) lines.push('  no drills yet');
    for (const d of drills) {
      const r = d.result;
      const what = r
        ? `${r.verified ? 'verified' : 'FAILED'} ${r.checkpoint?.id ?? '-'} -> ${r.compared?.id ?? '-'} (${r.stepsReplayed} step${r.stepsReplayed === 1 ? '' : 's'})` +
          (r.differences[0] ? `: ${r.differences[0].name}: ${r.differences[0].reason}` : '')
        : d.status === 'RUNNING'
          ? 'running'
          : `${d.status.toLowerCase()}: ${d.failure ?? ''}`;
      lines.push(`  ${d.startTime}  ${d.drillId}${d.scheduled ? ' (scheduled)' : ''}  ${what}`);
    }
    return lines.join('\n');
  });
  return EXIT.ok;
}

export const drillDefinition = defineCommand({
  name: 'drill',
  summary:
    'recovery drill on the workers: restore CKPT (default: the newest with a later one) in a fresh trainer, replay to the next checkpoint, compare bit for bit; exit 0 verified, 1 not',
  details:
    'drill RUN_ID --every 6h schedules it (a Temporal Schedule); drill --list RUN_ID shows past drills and the schedule; drill --remove RUN_ID deletes the schedule.',
  arguments: [RUN_ID_ARGUMENT],
  options: [
    {
      name: 'checkpoint',
      value: 'CKPT',
      description: 'the checkpoint to restore (default: the newest with a later one)',
    },
    { name: 'steps', value: 'K', description: 'replay only K steps' },
    {
      name: 'every',
      value: 'DURATION',
      description: 'schedule the drill (90s, 10m, 6h, 1d) instead of running it now',
    },
    { name: 'list', description: "the run's past drills, their results and the schedule" },
    { name: 'remove', description: "delete the run's drill schedule" },
  ],
  async run({ args, opts, out }) {
    const runId = args.RUN_ID;
    if (opts.list) return listDrillsCommand(await connectClient(), out, runId);
    if (opts.remove) return removeDrillScheduleCommand(await connectClient(), out, runId);
    const o = {
      runId,
      checkpoint: opts.checkpoint === undefined ? undefined : checkpointIdArg(opts.checkpoint),
      steps: parseDrillSteps(opts.steps),
      every: opts.every,
    };
    if (o.every !== undefined) parseEvery(o.every); // refused before connecting
    const settings = temporalSettings();
    const client = await connectClient(settings);
    return o.every !== undefined
      ? scheduleDrillCommand(client, settings, out, o)
      : drillCommand(client, settings, out, o);
  },
});
