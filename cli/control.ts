// `pause`, `resume`, `stop`, `set-lr`, `cancel`: steer a running run through its signals and updates.
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { pauseSignal, progressQuery, resumeSignal, setLearningRateUpdate, stopSignal } from '../workflows/definitions';
import { CliError, EXIT, type Out } from './common';
import type { RunSpec } from '../spec';
import { LrSchedule } from '../training/schedules';
import { defineCommand, RUN_ID_ARGUMENT, type CommandDefinition } from './command';
import { connectClient } from './connection';

async function running(client: Client, runId: string) {
  const handle = client.workflow.getHandle(runId);
  try {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING')
      throw new CliError(`run ${runId} is ${d.status.name.toLowerCase()}, not running`, EXIT.state);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new CliError(`no run ${runId}`, EXIT.notFound);
    throw err;
  }
  return handle;
}

export async function signalCommand(
  client: Client,
  out: Out,
  runId: string,
  what: 'pause' | 'resume' | 'stop',
): Promise<void> {
  const handle = await running(client, runId);
  const signal = { pause: pauseSignal, resume: resumeSignal, stop: stopSignal }[what];
  await handle.signal(signal);
  const done = {
    pause: 'pausing: the current step finishes and a checkpoint is committed',
    resume: 'resumed',
    stop: 'stopping: a final checkpoint is committed',
  }[what];
  out.emit({ runId, signal: what, sent: true }, () => `run ${runId}: ${done}`);
}

/** Largest learning rate `set-lr` sends (the workflow's update validator has the same bound). */
export const MAX_LEARNING_RATE = 10;

/**
 * A learning rate from the command line, checked before anything is sent: a finite number > 0 and <= 10 whose
 * float32 rounding (what the trainer uses) is still > 0, so 1e-320 is refused rather than training at rate 0.
 */
export function parseLearningRate(raw: string): number {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value))
    throw new CliError(`set-lr: VALUE must be a number, got ${JSON.stringify(raw)}`, EXIT.usage);
  if (value <= 0) throw new CliError(`set-lr: VALUE must be > 0, got ${raw}`, EXIT.usage);
  if (value > MAX_LEARNING_RATE)
    throw new CliError(`set-lr: VALUE must be <= ${MAX_LEARNING_RATE}, got ${raw}`, EXIT.usage);
  if (Math.fround(value) <= 0)
    throw new CliError(
      `set-lr: VALUE ${raw} is 0 in float32 (the training precision); the smallest float32 is 1.4e-45`,
      EXIT.usage,
    );
  return value;
}

export async function setLrCommand(client: Client, out: Out, runId: string, raw: string): Promise<void> {
  const value = parseLearningRate(raw);
  const handle = await running(client, runId);
  let applied: number;
  try {
    applied = await handle.executeUpdate(setLearningRateUpdate, { args: [value] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw new CliError(`set-lr rejected: ${(err.cause as Error | undefined)?.message ?? err.message}`, EXIT.usage);
    }
    throw err;
  }
  const progress = await handle.query(progressQuery).catch(() => null);
  const step = progress?.step ?? null;
  const spec = (await handle.describe().catch(() => null))?.memo?.spec as RunSpec | undefined;
  const schedule = spec?.schedule?.name ?? 'constant';
  // Under a schedule the value is the base rate the schedule scales: say so, with the rate the next step will use.
  const next =
    progress && schedule !== 'constant' && schedule !== 'plateau'
      ? LrSchedule.create(spec!.schedule, applied).learningRate(progress.step, progress.totalSteps)
      : applied;
  out.emit({ runId, learningRate: applied, schedule, fromStep: step, nextStepLearningRate: next }, () =>
    schedule === 'constant'
      ? `run ${runId}: learning rate ${applied} from the next chunk on`
      : `run ${runId}: base learning rate ${applied} from the next chunk on; the ${schedule} schedule scales it ` +
        (schedule === 'plateau'
          ? `(the plateau rate restarts from it and is reduced on plateaus from there)`
          : `as before, so the next step${step !== null ? ` (${step + 1})` : ''} trains at ${next.toPrecision(3)}`),
  );
}

export async function cancelCommand(client: Client, out: Out, runId: string): Promise<void> {
  const handle = await running(client, runId);
  await handle.cancel();
  out.emit(
    { runId, cancelRequested: true },
    () => `run ${runId}: cancellation requested; the running chunk commits a checkpoint first`,
  );
}

const SIGNALS = {
  pause:
    'pause: the current step finishes, a checkpoint is committed, the run waits; a paused-and-resumed run ends with the same weights as one never paused',
  resume: 'resume a paused run',
  stop: 'commit a final checkpoint and complete with status `stopped`',
} as const;

/** `pause`, `resume` and `stop`: one signal each. */
export const signalDefinitions: CommandDefinition[] = (['pause', 'resume', 'stop'] as const).map((signal) =>
  defineCommand({
    name: signal,
    summary: SIGNALS[signal],
    arguments: [RUN_ID_ARGUMENT],
    async run({ args, out }) {
      const runId = args.RUN_ID;
      await signalCommand(await connectClient(), out, runId, signal);
      return EXIT.ok;
    },
  }),
);

export const setLrDefinition = defineCommand({
  name: 'set-lr',
  summary:
    "validated update (0 < VALUE <= 10, and > 0 in float32); applies from the next chunk, recorded in the checkpoint state and the run's history",
  arguments: [RUN_ID_ARGUMENT, { name: 'VALUE' }],
  async run({ args, out }) {
    parseLearningRate(args.VALUE); // refused before connecting: nothing is sent
    await setLrCommand(await connectClient(), out, args.RUN_ID, args.VALUE);
    return EXIT.ok;
  },
});

export const cancelDefinition = defineCommand({
  name: 'cancel',
  summary: 'Temporal cancellation; the running chunk checkpoints before it exits',
  arguments: [RUN_ID_ARGUMENT],
  async run({ args, out }) {
    const runId = args.RUN_ID;
    await cancelCommand(await connectClient(), out, runId);
    return EXIT.ok;
  },
});
