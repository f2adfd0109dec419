// `pause`, `resume`, `stop`, `set-lr`, `cancel`: steer a running run through its signals and updates.
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { pauseSignal, progressQuery, resumeSignal, setLearningRateUpdate, stopSignal } from '../workflows/definitions';
import { CliError, type Out } from './common';

async function running(client: Client, runId: string) {
  const handle = client.workflow.getHandle(runId);
  try {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING')
      throw new CliError(`run ${runId} is ${d.status.name.toLowerCase()}, not running`, 4);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new CliError(`no run ${runId}`, 3);
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

export async function setLrCommand(client: Client, out: Out, runId: string, raw: string): Promise<void> {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value))
    throw new CliError(`set-lr: VALUE must be a number, got ${JSON.stringify(raw)}`, 2);
  const handle = await running(client, runId);
  let applied: number;
  try {
    applied = await handle.executeUpdate(setLearningRateUpdate, { args: [value] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw new CliError(`set-lr rejected: ${(err.cause as Error | undefined)?.message ?? err.message}`, 2);
    }
    throw err;
  }
  const step = await handle
    .query(progressQuery)
    .then((p) => p.step)
    .catch(() => null);
  out.emit(
    { runId, learningRate: applied, fromStep: step },
    () => `run ${runId}: learning rate ${applied} from the next chunk on`,
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
