// scikit-learn's breast-cancer set (569 rows, 30 features, target 0 malignant / 1 benign; test/fixtures/data) and the
// converted Keras classifier for it (Dense(16, relu), Dense(1, sigmoid); test/fixtures/keras/binary): a binary run's
// spec, shared by the unit and the end-to-end tests of task binary.
import * as path from 'node:path';
import type { RunSpecInput } from '../../spec/types';

const FIXTURES = path.join(__dirname, '..', '..', '..', 'test', 'fixtures');
export const BREAST_CANCER_CSV = path.join(FIXTURES, 'data', 'breast-cancer.csv');
export const KERAS_BINARY = `file://${path.join(FIXTURES, 'keras', 'binary', 'model.json')}`;

/** A binary run of the Keras classifier on the breast-cancer CSV asking for every metric; `over` replaces fields. */
export const binarySpec = (over: Partial<RunSpecInput> = {}): RunSpecInput => ({
  model: { tfjs: KERAS_BINARY },
  dataset: { format: 'csv', path: `file://${BREAST_CANCER_CSV}`, label: 'target', validationFraction: 0.1 },
  task: 'binary',
  metrics: ['auc', 'precision', 'recall', 'f1'],
  epochs: 4,
  batchSize: 32,
  seed: 11,
  optimizer: { name: 'adam', learningRate: 0.01 },
  checkpoint: { storage: 'file://unused' },
  ...over,
});
