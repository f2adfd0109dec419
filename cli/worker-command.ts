// The `worker` command's definition, kept apart from the worker's code (cli/worker.ts), which it loads only when the
// command runs: every other command starts without the Temporal worker SDK and the activities.
import { defineCommand } from './command';
import { CliError, EXIT } from './common';

/** `--slots N` (or DURABLE_TRAIN_SLOTS): an integer in [1, 64]; undefined when neither is given. */
export function slotsOption(value: string | undefined, env = process.env): number | undefined {
  const raw = value ?? env.DURABLE_TRAIN_SLOTS;
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    const where = value !== undefined ? '--slots' : 'DURABLE_TRAIN_SLOTS';
    throw new CliError(`worker: ${where} must be an integer from 1 to 64, got ${JSON.stringify(raw)}`, EXIT.usage);
  }
  return n;
}

export const workerDefinition = defineCommand({
  name: 'worker',
  summary:
    'one worker on the task queue (DURABLE_TRAIN_TASK_QUEUE, default durable-train); `--slots` activities at once (default 1: training is CPU-bound)',
  options: [
    {
      name: 'slots',
      value: 'N',
      description: 'training activities at once, 1 to 64 (default 1, or DURABLE_TRAIN_SLOTS)',
    },
  ],
  async run({ opts }) {
    const slots = slotsOption(opts.slots);
    // Loaded only for this command: the SDK's worker, the activities and their trainer code cost every other command
    // of the CLI most of its start-up time.
    const { runWorker } = await import('./worker');
    await runWorker({ slots });
    return EXIT.ok;
  },
});
