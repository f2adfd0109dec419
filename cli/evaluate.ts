// `evaluate RUN_ID[:CKPT] [--split test|validation] [--storage URL]`: a checkpoint's loss and accuracy (or mse/mae)
// on a split of the run's data, computed here with the run's spec (data read as a worker in this directory reads it).
// The test split's number is for reporting only: the run's choices were made on the validation split.
import type { Client } from '@temporalio/client';
import { hasValidationSplit } from '../spec/helpers';
import type { RunSpec } from '../spec/types';
import type { TrainerState } from '../training/trainer-types';
import { recordedReplicas } from '../training/topology';
import { CliError, EXIT, type Out } from './common';
import { evalLine } from './evals';
import { exportRef, RUN_REF_ARGUMENT, readRunCheckpoint } from './export';
import { defineCommand } from './command';
import { connectClient } from './connection';

const EVALUATE_DETAILS = `CKPT defaults to the run's newest valid checkpoint (verified). --split defaults to test; validation needs a run
with a validation split (dataset.validationFraction > 0). Run it where the worker runs (file datasets resolve there).`;

export interface EvaluateOptions {
  ref: string;
  split?: string;
  storage?: string;
}

export function splitArg(split: string | undefined): 'test' | 'validation' {
  const s = split ?? 'test';
  if (s !== 'test' && s !== 'validation')
    throw new CliError(`evaluate: --split must be test or validation, got ${JSON.stringify(s)}`, EXIT.usage);
  return s;
}

export async function evaluateCommand(client: Client, out: Out, opts: EvaluateOptions): Promise<void> {
  const split = splitArg(opts.split);
  const { runId, checkpointId } = exportRef(opts.ref);
  const { spec, manifest, blobs } = await readRunCheckpoint(client, runId, checkpointId, opts.storage, 'evaluate');
  if (split === 'validation' && !hasValidationSplit(spec))
    throw new CliError(
      `evaluate: run ${runId} has no validation split (its spec has no dataset.validationFraction)`,
      EXIT.usage,
    );
  // Loaded only here: tfjs is a heavy import for the other commands.
  const { initBackend } = await import('../training/backend');
  const { Trainer } = await import('../training');
  const { snapshotOf } = await import('../activities/commit');
  await initBackend();
  // Evaluating reads the weights only: whatever backend or numerics wrote them, nothing here trains on; and in the
  // checkpoint's own layout (a run whose replica count changed later evaluates its older checkpoints as they are).
  const replicas = recordedReplicas(manifest.state as TrainerState);
  const readOnly: RunSpec = {
    ...spec,
    distributed: replicas > 1 ? { syncEverySteps: 1, ...spec.distributed, replicas } : undefined,
    resume: { ...spec.resume, allowBackendChange: true, allowNumericsChange: true },
  };
  const trainer = await Trainer.fromSnapshot(readOnly, snapshotOf(manifest, blobs));
  try {
    const result = trainer.evaluate(split);
    out.emit(
      { runId, checkpoint: { id: manifest.id, step: manifest.step, epoch: manifest.epoch }, split, ...result },
      () => `${runId}:${manifest.id} (step ${manifest.step}): ${evalLine(split, result)}`,
    );
  } finally {
    trainer.dispose();
  }
}

export const evaluateDefinition = defineCommand({
  name: 'evaluate',
  summary:
    "a checkpoint's loss and accuracy (or mse/mae) on the test split (default) or the validation split, computed here with the run's spec",
  details: EVALUATE_DETAILS,
  arguments: [RUN_REF_ARGUMENT],
  options: [
    { name: 'split', value: 'test|validation', description: 'the split to evaluate on (default test)' },
    { name: 'storage', value: 'URL', description: "read the checkpoint there instead of the run's spec's storage" },
  ],
  async run({ args, opts, out }) {
    const ref = args['RUN_ID[:CKPT]'];
    splitArg(opts.split);
    await evaluateCommand(await connectClient(), out, { ref, split: opts.split, storage: opts.storage });
    return EXIT.ok;
  },
});
