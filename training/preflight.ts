// Checks that need the run's data and model, made before anything starts (the CLI's start, the library's
// startTraining) and again by the trainer on the worker for callers that bypass both. Each check is one entry of
// PREFLIGHT_CHECKS: a new check is one function and one line there.
import { DurableTrainError } from '../spec/errors';
import type { RunSpec } from '../spec/types';
import { buildNet, type Net } from './models';
import { hasRegistered } from './registry';
import { loadTaskData, type TaskData } from './task-data';

/** A run that cannot work, found before it starts: `field` is the spec field to change. */
export class PreflightError extends DurableTrainError {
  readonly code = 'invalid' as const;

  override readonly name = 'PreflightError';
  constructor(
    readonly field: string,
    detail: string,
  ) {
    super(`${field}: ${detail}`);
  }
}

export interface PreflightContext {
  spec: RunSpec;
  data: TaskData;
  /** The spec's model built on the data's shape (zero weights); null when its builder lives only in the worker. */
  net: Net | null;
}

export type PreflightCheck = (ctx: PreflightContext) => void | Promise<void>;

// Numeric class labels with more distinct values than this (and than a quarter of the training rows) look like a
// regression target read as classes.
const MANY_CLASSES = 20;

/** The hint for classification labels that look like a regression target, or null. */
export function regressionHint(data: TaskData): string | null {
  const classes = data.classes;
  if (data.task !== 'classification' || !classes || classes.length <= MANY_CLASSES) return null;
  if (!classes.every((c) => c.trim() !== '' && Number.isFinite(Number(c)))) return null;
  return `a numeric label with ${classes.length} distinct values: did you mean "task": "regression"?`;
}

/** The last layer gives one unit per class (classification) or one value (regression). */
export function checkOutputs(ctx: PreflightContext): void {
  const { data, net } = ctx;
  if (!net) return;
  const out = net.model.outputs[0].shape;
  if (out.length === 2 && out[1] === data.outputs) {
    const last = net.model.layers[net.model.layers.length - 1];
    if (data.task === 'binary' && (last.getConfig() as { activation?: unknown }).activation === 'softmax')
      throw new PreflightError(
        'model',
        `the last layer (${last.name}) is a softmax of one unit, always 1: task binary wants ` +
          'activation sigmoid (as Keras: Dense(1, activation="sigmoid") with binary_crossentropy)',
      );
    return;
  }
  const units = JSON.stringify(out.slice(1));
  const need =
    data.task === 'classification'
      ? `${data.outputs} (one per class: ${(data.classes ?? []).slice(0, 12).join(', ')}` +
        `${(data.classes?.length ?? 0) > 12 ? ', ...' : ''})`
      : data.task === 'binary'
        ? '1 (the probability of label 1, a sigmoid unit)'
        : '1 (the regression target)';
  const hint =
    regressionHint(data) ??
    (data.task === 'classification' && out[1] === 1
      ? 'a last layer of 1 unit is for "task": "regression" (a numeric target) or "binary" (labels 0/1); for ' +
        'classification give it one unit per class'
      : data.task === 'regression'
        ? 'for regression the last layer has 1 unit and no softmax'
        : data.task === 'binary'
          ? 'for binary the last layer is Dense(1, activation "sigmoid"); for one unit per class use "task": ' +
            '"classification"'
          : `give the last layer ${data.outputs} units`);
  throw new PreflightError('model', `the last layer gives ${units} per example; ${data.name} needs ${need}: ${hint}`);
}

/** One example of the data fills the model's input. */
export function checkInputs(ctx: PreflightContext): void {
  const { data, net } = ctx;
  if (!net) return;
  const inShape = net.model.inputs[0].shape.slice(1);
  if (inShape.reduce((a: number, b) => a * (b ?? 1), 1) !== data.featureSize)
    throw new PreflightError(
      'model',
      `input shape ${JSON.stringify(inShape)} does not hold ${data.name}'s ${data.featureSize} features per example`,
    );
}

/** Every frozen layer exists and has weights. */
export function checkFreeze(ctx: PreflightContext): void {
  const { spec, net } = ctx;
  if (!net) return;
  const layersWithWeights = new Set(net.params.map((q) => q.name.split('/')[1]));
  (spec.freeze ?? []).forEach((name, i) => {
    if (!layersWithWeights.has(name))
      throw new PreflightError(
        `freeze[${i}]`,
        `the model has no trainable layer ${JSON.stringify(name)} (it has: ${[...layersWithWeights].join(', ')})`,
      );
  });
}

/**
 * Classification needs two classes at least, and labels that are classes rather than a numeric target; binary needs
 * both labels among the training rows.
 */
export function checkLabels(ctx: PreflightContext): void {
  const { data } = ctx;
  if (data.task === 'binary') {
    let ones = 0;
    for (const v of data.train.y) ones += v;
    if (ones === 0 || ones === data.train.n)
      throw new PreflightError(
        'dataset.label',
        `the ${data.train.n} training rows of ${data.name} all have label ${ones ? 1 : 0}: binary needs both 0 and 1`,
      );
    return;
  }
  if (data.task !== 'classification') return;
  const classes = data.classes ?? [];
  if (classes.length < 2)
    throw new PreflightError(
      'dataset.label',
      `${data.name} has ${classes.length === 0 ? 'no classes' : `one class only (${classes[0]})`}: classification needs two at least`,
    );
  const hint = regressionHint(data);
  if (hint && classes.length * 4 > data.train.n)
    throw new PreflightError('task', `${hint} (${data.train.n} training rows)`);
}

/** The checks, in order. Add one here: a function of the context that throws PreflightError naming the field. */
export const PREFLIGHT_CHECKS: readonly PreflightCheck[] = [checkLabels, checkInputs, checkOutputs, checkFreeze];

/** The model-against-data checks the trainer repeats on the worker (the data's own checks run as it loads). */
export const MODEL_CHECKS: readonly PreflightCheck[] = [checkInputs, checkOutputs, checkFreeze];

export interface PreflightResult {
  /** What could not be checked here (a dataset or model registered only in the worker), for a note. */
  skipped: string[];
  /** What was built, for the resume guards `start` runs before it continues a run (absent: registered elsewhere). */
  built?: {
    trainRows: number;
    datasetFingerprint: string;
    /** By fingerprint version (model-fingerprint.ts); absent when the model is registered only in the worker. */
    modelFingerprints?: { 1: string; 2: string };
  };
}

/**
 * Loads the run's data (files resolve against `baseDir`), builds its model on the data's shape and runs every
 * check. Throws PreflightError (or the loaders' DatasetError / ConfigError / LayerError) naming the field.
 */
export async function preflight(spec: RunSpec, opts: { baseDir?: string } = {}): Promise<PreflightResult> {
  const skipped: string[] = [];
  const ds = spec.dataset;
  if ('registered' in ds && !hasRegistered('dataset', ds.registered)) {
    return { skipped: [`dataset ${ds.registered} is registered in the worker: its checks run there`] };
  }
  const data = await loadTaskData(spec, opts.baseDir);
  let net: Net | null = null;
  const model = spec.model;
  if (typeof model === 'object' && 'registered' in model && !hasRegistered('model', model.registered))
    skipped.push(`model ${model.registered} is registered in the worker: its checks run there`);
  else net = await buildNet(spec, data.featureShape, data.outputs);
  try {
    for (const check of PREFLIGHT_CHECKS) await check({ spec, data, net });
    const modelFingerprints = net ? { 1: net.legacyFingerprint(), 2: net.fingerprint } : undefined;
    return {
      skipped,
      built: { trainRows: data.train.n, datasetFingerprint: data.fingerprint, modelFingerprints },
    };
  } finally {
    net?.dispose();
  }
}
