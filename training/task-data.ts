// The data a trainer learns from, whatever its source (training/data/): examples as float32 rows of `featureShape`,
// targets as class indices (classification) or numbers (regression), and a fingerprint of what was read.
import * as path from 'node:path';
import { parseStorageUrl } from '../spec/storage-url';
import type { RunSpec } from '../spec/types';
import { loadData, type DataSpec, type LoadedData } from './data';
import { ConfigError } from './errors';
import { registeredDataset } from './registry';

export interface TaskData extends LoadedData {
  /** Units the model's output must have: the number of classes, or 1 for regression. */
  outputs: number;
  /** Whether examples are single-channel 28x28 images that `augment.shift` may move. */
  images: boolean;
}

/** The spec's dataset as the loaders take it: the run's task goes with a file dataset. */
export function dataSpecOf(spec: RunSpec): DataSpec {
  const ds = spec.dataset;
  if ('registered' in ds) throw new Error(`dataset ${ds.registered} is registered in code, not read by the loaders`);
  return 'format' in ds ? { ...ds, task: spec.task ?? 'classification' } : ds;
}

/** A dataset from a loader registered in this worker, checked like a loaded file. */
async function loadRegistered(spec: RunSpec, name: string): Promise<LoadedData> {
  const d = await registeredDataset(name)({ spec, seed: spec.seed });
  const featureSize = d.featureShape.reduce((a, b) => a * b, 1);
  for (const [which, split] of [
    ['train', d.train],
    ['test', d.test],
  ] as const) {
    if (!(split.n >= 1) || split.x.length !== split.n * featureSize || split.y.length !== split.n)
      throw new ConfigError(
        `dataset ${name}: the ${which} split has n=${split.n}, ${split.x.length} feature values and ${split.y.length} targets; ` +
          `expected n >= 1, n*${featureSize} and n`,
      );
  }
  if (d.task === 'classification' && !d.classes?.length)
    throw new ConfigError(`dataset ${name}: classification needs classes`);
  return { name, featureSize, featureNames: null, normalization: null, bytesRead: 0, ...d };
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
  const data =
    'registered' in ds
      ? await loadRegistered(spec, ds.registered)
      : await loadData(dataSpecOf(spec), { seed: spec.seed, baseDir, roots: storeRoots(spec, baseDir) });
  const task = spec.task ?? 'classification';
  if (data.task !== task) throw new Error(`dataset ${data.name} is for ${data.task}, the spec's task is ${task}`);
  const shape = data.featureShape;
  return {
    ...data,
    outputs: task === 'classification' ? (data.classes?.length ?? 0) : 1,
    images: shape.length === 3 && shape[0] === 28 && shape[1] === 28 && shape[2] === 1,
  };
}
