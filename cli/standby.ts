// A worker ready to take over: its spare training processes load, ahead of time, the data of the runs training on its
// task queue (on any worker), so that when one of those runs' workers is lost, taking the run over costs only the
// checkpoint restore, not the data load. Asked every `everyMs` while the worker runs; the newest `maxRuns` runs.
import type { Client } from '@temporalio/client';
import type { TrainerSupervisor } from '../activities/trainer-process/supervisor';
import type { RunSpec } from '../spec';
import { TRAINING_WORKFLOW } from '../workflows/definitions';
import type { TemporalSettings } from './connection';

/** The specs (from their memo) of the newest running training runs on the task queue. */
export async function runningSpecs(client: Client, taskQueue: string, maxRuns: number): Promise<RunSpec[]> {
  const query = `WorkflowType = '${TRAINING_WORKFLOW}' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}'`;
  const specs: RunSpec[] = [];
  for await (const w of client.workflow.list({ query, pageSize: maxRuns })) {
    const spec = (w.memo as { spec?: RunSpec } | undefined)?.spec;
    if (spec) specs.push(spec);
    if (specs.length >= maxRuns) break;
  }
  return specs;
}

/** Starts preparing the spares for the running runs; returns the function that stops it. */
export function prepareStandby(
  client: () => Promise<Client>,
  settings: TemporalSettings,
  supervisor: TrainerSupervisor,
  opts: { everyMs?: number; maxRuns?: number } = {},
): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    try {
      const specs = await runningSpecs(await client(), settings.taskQueue, opts.maxRuns ?? 2);
      for (const spec of specs) supervisor.prepare(spec);
    } catch {
      // No visibility answer this time (a server without it, a blip): the standby is only slower to take over.
    }
    if (!stopped) timer = setTimeout(() => void tick(), opts.everyMs ?? 15_000).unref();
  };
  void tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
