// The data a trainer learns from, whatever its source: examples as float32 rows of `featureShape`, targets as class
// indices (classification) or numbers (regression), and a fingerprint of what was read.
import type { RunSpec } from '../spec/types';
import { IMAGE_HEIGHT, IMAGE_WIDTH, loadDataset, NUM_CLASSES } from './datasets';

export interface TaskSplit {
  /** n * featureSize values, row-major. */
  x: Float32Array;
  /** Class index per example (classification) or the target value (regression). */
  y: Uint8Array | Int32Array | Float32Array;
  n: number;
}

export interface TaskData {
  name: string;
  featureShape: number[];
  featureSize: number;
  task: 'classification' | 'regression';
  /** Class names in index order (classification), else null. */
  classes: string[] | null;
  /** Units the model's output must have: the number of classes, or 1 for regression. */
  outputs: number;
  train: TaskSplit;
  test: TaskSplit;
  fingerprint: string;
  /** Whether examples are single-channel images that `augment.shift` may move. */
  images: boolean;
}

export async function loadTaskData(spec: RunSpec): Promise<TaskData> {
  const ds = loadDataset(spec.dataset);
  const featureShape = [IMAGE_HEIGHT, IMAGE_WIDTH, 1];
  return {
    name: ds.name,
    featureShape,
    featureSize: IMAGE_HEIGHT * IMAGE_WIDTH,
    task: 'classification',
    classes: Array.from({ length: NUM_CLASSES }, (_, i) => String(i)),
    outputs: NUM_CLASSES,
    train: { x: ds.train.images, y: ds.train.labels, n: ds.train.n },
    test: { x: ds.test.images, y: ds.test.labels, n: ds.test.n },
    fingerprint: ds.fingerprint,
    images: true,
  };
}
