// The data a trainer learns from, whatever its source (training/data/): examples as float32 rows of `featureShape`,
// targets as class indices (classification) or numbers (regression), and a fingerprint of what was read.
import * as path from 'node:path';
import { parseStorageUrl } from '../storage/url';
import type { RunSpec } from '../spec/types';
import { DatasetError, loadData, type DataSpec, type LoadedData } from './data';
import { ConfigError } from './errors';
import { registeredDataset, type RegisteredData } from './registry';
import { carveValidation } from './splits';
import type { DataSplit } from './data';

export interface TaskData extends LoadedData {
  /** Units the model's output must have: the number of classes, or 1 for regression. */
  outputs: number;
  /** Whether examples are single-channel 28x28 images that `augment.shift` may move. */
  images: boolean;
  /**
   * Rows held out of training that every choice (best checkpoint, plateau, early stopping) is made on; null for a run
   * without one (its choices use the test split, as every run did before validation splits).
   */
  validation: DataSplit | null;
}

/** The spec's dataset as the loaders take it: the run's task goes with a file dataset. */
export function dataSpecOf(spec: RunSpec): DataSpec {
  const ds = spec.dataset;
  if ('registered' in ds) throw new Error(`dataset ${ds.registered} is registered in code, not read by the loaders`);
  // A spec recording `normalizeFrom: "train"` has the loader carve its validation rows before the statistics; one
  // recorded before it has them carved from the loaded (already standardised) train split (splits.ts).
  const rest: DataSpec & { normalizeFrom?: string } = { ...ds };
  if (rest.normalizeFrom !== 'train') delete rest.validationFraction;
  delete rest.normalizeFrom;
  return 'format' in rest ? { ...rest, task: spec.task ?? 'classification' } : rest;
}

/**
 * The first problem of a registered loader's split: lengths that disagree, a non-finite feature, a class index out of
 * [0, classes), a binary label other than 0 and 1, or a non-finite target, naming the row (0-based, as the loader's arrays count) and the feature.
 */
export function splitProblem(
  which: string,
  split: RegisteredData['train'],
  featureSize: number,
  task: RegisteredData['task'],
  classes: number,
): string | null {
  if (!split || !(Number.isInteger(split.n) && split.n >= 1))
    return `the ${which} split has n=${split?.n}; expected an integer >= 1`;
  if (!split.x || split.x.length !== split.n * featureSize)
    return (
      `the ${which} split has ${split.x?.length} feature values for n=${split.n} rows of ${featureSize}; ` +
      `expected ${split.n * featureSize} (rows of unequal length?)`
    );
  if (!split.y || split.y.length !== split.n)
    return `the ${which} split has ${split.y?.length} targets for n=${split.n} rows; expected ${split.n}`;
  const { x, y } = split;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      const row = Math.floor(i / featureSize);
      return `${which} row ${row}: feature ${i - row * featureSize} is ${x[i]}; features must be finite numbers`;
    }
  }
  for (let r = 0; r < y.length; r++) {
    const v = y[r];
    const ok =
      task === 'classification'
        ? Number.isInteger(v) && v >= 0 && v < classes
        : task === 'binary'
          ? v === 0 || v === 1
          : Number.isFinite(v);
    if (!ok)
      return (
        `${which} row ${r}: the label is ${v}; ` +
        (task === 'classification'
          ? `expected a class index in [0, ${classes - 1}] (${classes} classes)`
          : task === 'binary'
            ? 'a binary label is 0 or 1'
            : 'a regression target must be a finite number')
      );
  }
  return null;
}

/** A dataset from a loader registered in this worker, checked like a loaded file. */
async function loadRegistered(spec: RunSpec, name: string): Promise<LoadedData & { validation?: DataSplit }> {
  const d = await registeredDataset(name)({ spec, seed: spec.seed });
  if (!d || !Array.isArray(d.featureShape) || !d.featureShape.every((v) => Number.isInteger(v) && v >= 1))
    throw new ConfigError(`dataset ${name}: featureShape must be a list of positive integers, got ${d?.featureShape}`);
  const featureSize = d.featureShape.reduce((a, b) => a * b, 1);
  if (d.task === 'classification' && !d.classes?.length)
    throw new ConfigError(`dataset ${name}: classification needs classes`);
  for (const [which, split] of [
    ['train', d.train],
    ['test', d.test],
    ...(d.validation ? [['validation', d.validation] as const] : []),
  ] as const) {
    const problem = splitProblem(which, split, featureSize, d.task, d.classes?.length ?? 0);
    if (problem) throw new ConfigError(`dataset ${name}: ${problem}`);
  }
  return { name, featureSize, featureNames: null, normalization: null, bytesRead: 0, ...d };
}

/**
 * The run's validation split: a registered loader's own, else carved from the train split by the spec's fraction.
 * Without a fraction (0, or a spec recorded before validation splits) there is none, whatever the loader returns.
 */
function withValidation(d: LoadedData, spec: RunSpec): LoadedData & { validation: DataSplit | null } {
  const ds = spec.dataset;
  // A file's validation rows (dataset.validation, rows marked so in dataset.splitColumn, or carved by the loader).
  if (d.validation && !('registered' in ds)) return { ...d, validation: d.validation };
  const fraction = ds.validationFraction;
  if ('splitColumn' in ds && !(fraction && fraction > 0)) {
    throw new DatasetError(
      'dataset.splitColumn',
      `no row of ${JSON.stringify(ds.splitColumn)} is marked validation and dataset.validationFraction is 0: mark ` +
        'some rows validation, or set validationFraction to carve them from the train rows',
    );
  }
  if (!d.validation || !(fraction && fraction > 0)) return carveValidation(d, fraction, spec.seed);
  return { ...d, validation: d.validation };
}

/**
 * Data for a binary task: labels as read are classes named 0 and 1 (a file loader has checked each row already; a
 * registered loader or an idx file is checked here, naming the split, the row and the value). Targets become the
 * label values 0/1 and the classes ["0", "1"], whichever of them the rows hold.
 */
export function binaryData<T extends LoadedData & { validation?: DataSplit | null }>(d: T): T {
  // Without classes (a registered loader may give none), y holds the label values; else class indices.
  const classes = d.classes;
  const valueOf = (c: string) => (c.trim() !== '' && (Number(c) === 0 || Number(c) === 1) ? Number(c) : NaN);
  const splits: Array<[string, DataSplit]> = [
    ['train', d.train],
    ['test', d.test],
  ];
  if (d.validation) splits.push(['validation', d.validation]);
  const remapped = splits.map(([which, split]) => {
    const y = new Int32Array(split.n);
    for (let r = 0; r < split.n; r++) {
      const label = classes ? classes[split.y[r]] : split.y[r];
      const v = classes ? valueOf(String(label)) : Number(label);
      if (v !== 0 && v !== 1)
        throw new ConfigError(
          `dataset.label: ${d.name}, ${which} row ${r}: the label is ${JSON.stringify(label)}; ` +
            'task binary needs labels 0 and 1',
        );
      y[r] = v;
    }
    return { ...split, y };
  });
  return {
    ...d,
    task: 'binary',
    classes: ['0', '1'],
    train: remapped[0],
    test: remapped[1],
    ...(d.validation ? { validation: remapped[2] } : {}),
  };
}

/** The run's checkpoint store, when it is a directory: data may be read from there by default (roots.ts). */
export function storeRoots(spec: RunSpec, baseDir: string): string[] {
  try {
    const loc = parseStorageUrl(spec.checkpoint.storage);
    return loc.kind === 'file' ? [path.resolve(baseDir, loc.path)] : [];
  } catch {
    return [];
  }
}

/** Loads (from the per-process cache after the first call) the data of a run; file paths resolve against baseDir. */
export async function loadTaskData(spec: RunSpec, baseDir: string = process.cwd()): Promise<TaskData> {
  const ds = spec.dataset;
  const loaded =
    'registered' in ds
      ? await loadRegistered(spec, ds.registered)
      : await loadData(dataSpecOf(spec), { seed: spec.seed, baseDir, roots: storeRoots(spec, baseDir) });
  const task = spec.task ?? 'classification';
  const data = withValidation(task === 'binary' ? binaryData(loaded) : loaded, spec);
  if (data.task !== task) throw new Error(`dataset ${data.name} is for ${data.task}, the spec's task is ${task}`);
  const shape = data.featureShape;
  return {
    ...data,
    outputs: task === 'classification' ? (data.classes?.length ?? 0) : 1,
    images: shape.length === 3 && shape[0] === 28 && shape[1] === 28 && shape[2] === 1,
  };
}
