// `predict RUN_ID[:CKPT] --input rows.csv|rows.jsonl [--out preds.csv]`: class names and probabilities (or values)
// for raw rows, standardised as the run's training data was, by the checkpoint's model as its evaluation runs it.
import * as fs from 'node:fs';
import type { Client } from '@temporalio/client';
import { CliError, EXIT, type Out } from './common';
import { exportRef, RUN_REF_ARGUMENT, preprocessingOfCheckpoint, readRunCheckpoint } from './export';
import type { InferenceModel } from '../training/inference';
import { defineCommand } from './command';
import { connectClient } from './connection';

/** The model of a run's checkpoint (default: the newest valid one) with its preprocessing, ready for raw rows. */
export async function loadRunForInference(
  client: Client,
  ref: string,
  opts: { storage?: string; command?: string } = {},
): Promise<InferenceModel> {
  const { runId, checkpointId } = exportRef(ref);
  const command = opts.command ?? 'predict';
  const { spec, manifest, tensors } = await readRunCheckpoint(client, runId, checkpointId, opts.storage, command);
  const preprocessing = await preprocessingOfCheckpoint(spec, manifest);
  const { restoreNet } = await import('../training/export');
  const { inferenceFromNet } = await import('../training/inference');
  const state = manifest.state as { featureShape?: number[]; modelTopology?: unknown } | null;
  const outputs = preprocessing.task === 'classification' ? preprocessing.classes!.length : 1; // binary: 1
  try {
    const net = await restoreNet(spec, tensors, state?.featureShape, state?.modelTopology, outputs);
    return inferenceFromNet(net, preprocessing);
  } catch (err) {
    throw new CliError(
      `${command}: checkpoint ${runId}:${manifest.id} cannot be loaded: ${(err as Error).message}`,
      EXIT.notFound,
    );
  }
}

export interface PredictOptions {
  ref: string;
  input: string | undefined;
  out?: string;
  storage?: string;
}

export async function predictCommand(client: Client, out: Out, opts: PredictOptions): Promise<void> {
  if (!opts.input) throw new CliError('predict: --input FILE is required', EXIT.usage);
  if (!fs.existsSync(opts.input)) throw new CliError(`predict: --input ${opts.input} does not exist`, EXIT.usage);
  const { InputError, predictionsCsv } = await import('../training/inference');
  const model = await loadRunForInference(client, opts.ref, { storage: opts.storage });
  try {
    let preds;
    try {
      preds = await model.predictFile(opts.input);
    } catch (err) {
      if (err instanceof InputError || (err as Error).name === 'DatasetError')
        throw new CliError(`predict: ${(err as Error).message}`, EXIT.usage);
      throw err;
    }
    const csv = predictionsCsv(preds, model.preprocessing);
    if (opts.out) fs.writeFileSync(opts.out, csv);
    out.emit(
      { rows: preds.length, classes: model.preprocessing.classes, out: opts.out ?? null, predictions: preds },
      () => (opts.out ? `wrote ${preds.length} predictions to ${opts.out}` : csv.trimEnd()),
    );
  } finally {
    model.dispose();
  }
}

export const predictDefinition = defineCommand({
  name: 'predict',
  summary: 'class and probabilities (or value) for raw rows, columns checked by name',
  arguments: [RUN_REF_ARGUMENT],
  options: [
    { name: 'input', value: 'rows.csv|rows.jsonl', required: true, description: 'the raw rows (columns by name)' },
    { name: 'out', value: 'preds.csv', description: 'write the predictions there (default: print them)' },
    { name: 'storage', value: 'URL', description: "read the checkpoint there instead of the run's spec's storage" },
  ],
  async run({ args, opts, out }) {
    const ref = args['RUN_ID[:CKPT]'];
    await predictCommand(await connectClient(), out, { ref, input: opts.input, out: opts.out, storage: opts.storage });
    return EXIT.ok;
  },
});
