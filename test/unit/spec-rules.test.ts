// The spec's rules across fields (limits of the dataset, loss and metrics per task, early stopping, class weights,
// clipping), the defaults they fill in, which refusal is reported first, and the small pure helpers around a spec
// (validation rows, step counts, merging overrides) and ids. Each assert pins a boundary or a message a user reads.
import * as assert from 'node:assert/strict';
import { learningRateProblem, LEARNING_RATE_MIN } from '../../spec/catalog';
import { DurableTrainError } from '../../spec/errors';
import { builtinTrainRows, mergeSpec, stepCounts, validationRows } from '../../spec/helpers';
import { InvalidIdError, validateCheckpointId, validateRunId } from '../../spec/ids';
import { SpecError, validateSpec, type RunSpec } from '../../spec';

const base = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 100 },
  epochs: 1,
  batchSize: 10,
  optimizer: { name: 'sgd', learningRate: 0.1 },
  checkpoint: { storage: 'file://.data/checkpoints' },
};
const iris = { dataset: { name: 'iris' } };
const spec = (patch: Record<string, unknown>): Record<string, unknown> => ({ ...base, ...patch });

/** The refusal of `patch` over the base spec, as the user reads it: `field: message`. */
function refusal(patch: Record<string, unknown>): string {
  try {
    validateSpec(spec(patch));
  } catch (err) {
    assert.ok(err instanceof SpecError, `expected a SpecError, got ${String(err)}`);
    assert.ok(err.message.startsWith(`invalid spec: ${err.field}: `), err.message);
    return err.message.slice('invalid spec: '.length);
  }
  assert.fail(`expected ${JSON.stringify(patch)} to be refused`);
}

describe('spec rules: what a SpecError is', () => {
  it('is a named durable-train error of code invalid, with its field', () => {
    let err: unknown;
    try {
      validateSpec(spec({ epochs: 0 }));
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof SpecError && err instanceof DurableTrainError);
    assert.equal(err.name, 'SpecError');
    assert.equal(err.code, 'invalid');
    assert.equal(err.field, 'epochs');
  });

  it('shows a long value shortened to 80 characters, a shorter one whole', () => {
    const long = 'x'.repeat(79); // 81 characters as JSON
    assert.equal(
      refusal({ model: long }),
      `model: unknown value "${'x'.repeat(76)}... (one of: mnist-mlp, mnist-cnn, or { "layers": [...] })`,
    );
    const fits = 'x'.repeat(78); // 80 characters as JSON
    assert.equal(
      refusal({ model: fits }),
      `model: unknown value "${fits}" (one of: mnist-mlp, mnist-cnn, or { "layers": [...] })`,
    );
  });

  it('names the shallowest unknown field first', () => {
    assert.equal(
      refusal({
        checkpoint: { storage: 'file://x', keepBest: { k: 1, metric: 'loss', zz: 1 } },
        resume: { zz: 1 },
      }),
      'resume.zz: unknown field (allowed: allowDatasetChange, allowBackendChange, allowNumericsChange, allowTopologyChange)',
    );
    assert.match(
      refusal({ dataset: { name: 'mnist', limt: 4 }, optimizer: { ...base.optimizer, foo: 1 }, epocs: 1 }),
      /^epocs: unknown field \(allowed: model, dataset, epochs,/,
    );
  });

  it('says what type a field must be: a list, a string', () => {
    assert.equal(refusal({ metrics: 'auc' }), 'metrics: must be a list, got "auc"');
    assert.equal(refusal({ $schema: 5 }), '$schema: must be a string, got 5');
  });
});

describe('spec rules: datasets', () => {
  it('limits a built-in dataset to its own size (iris: 120 train, 30 test)', () => {
    const ok = validateSpec(spec({ dataset: { name: 'iris', trainLimit: 120, testLimit: 30 } }));
    assert.deepEqual(ok.dataset, { name: 'iris', trainLimit: 120, testLimit: 30 });
    assert.equal(
      refusal({ dataset: { name: 'iris', trainLimit: 121 } }),
      'dataset.trainLimit: must be <= 120 (the size of iris), got 121',
    );
    assert.equal(
      refusal({ dataset: { name: 'iris', testLimit: 31 } }),
      'dataset.testLimit: must be <= 30 (the size of iris), got 31',
    );
  });

  it("refuses a file dataset's URL with the storage rule's own words", () => {
    assert.equal(
      refusal({ dataset: { format: 'csv', path: 'ftp://x/y.csv', label: 'y' } }),
      'dataset.path: "ftp://x/y.csv" has unknown scheme ftp:// (supported: file://, s3://, gs://, az://, https://)',
    );
    assert.match(
      refusal({ dataset: { format: 'csv', path: '/tmp/y.csv', label: 'y' } }),
      /^dataset\.path: "\/tmp\/y\.csv" is not a URL: use file:\/\/PATH, s3:\/\/BUCKET\/PREFIX/,
    );
  });

  it('names the field inside the dataset form the input meant (registered, file, built-in)', () => {
    assert.equal(
      refusal({ dataset: { registered: '9x' } }),
      'dataset.registered: must be a name like my-model (letters, digits, _ . -)',
    );
    assert.equal(
      refusal({ dataset: { format: 'csv', label: 'y' } }),
      'dataset.path: is required (or the split files train and test)',
    );
    assert.equal(refusal({ dataset: { name: 'mnist', trainLimit: 0 } }), 'dataset.trainLimit: must be >= 1, got 0');
  });

  it('names the field inside a dataset or model object whose field has the wrong type', () => {
    assert.equal(refusal({ dataset: { registered: 5 } }), 'dataset.registered: must be a string, got 5');
    assert.equal(
      refusal({ dataset: { format: 'csv', path: 'file://x.csv' } }),
      'dataset.label: missing required field',
    );
    assert.equal(
      refusal({ dataset: { name: 'mnist', trainLimit: 'x' } }),
      'dataset.trainLimit: must be a number, got "x"',
    );
    assert.equal(refusal({ model: { tfjs: 5 } }), 'model.tfjs: must be a string, got 5');
    assert.equal(refusal({ model: { registered: 5 } }), 'model.registered: must be a string, got 5');
  });

  it('a model that is neither a name nor an object is an unknown value, listing the forms', () => {
    for (const model of [5, null, true])
      assert.equal(
        refusal({ model }),
        `model: unknown value ${String(model)} (one of: mnist-mlp, mnist-cnn, or { "layers": [...] })`,
      );
  });

  it('a file dataset is one path or the split files train and test (csv, jsonl), each rule naming its field', () => {
    const f = { format: 'csv', label: 'y' };
    const split = { ...f, train: 'file://t.csv', test: 'file://u.csv' };
    assert.equal(
      refusal({ dataset: { ...split, path: 'file://a.csv' } }),
      'dataset.path: give either path or the split files train and test, not both',
    );
    assert.equal(refusal({ dataset: { ...split, format: 'idx' } }), 'dataset.train: split files are for csv and jsonl');
    assert.equal(refusal({ dataset: { ...f, train: 'file://t.csv' } }), 'dataset.test: is required with split files');
    assert.equal(refusal({ dataset: { ...f, test: 'file://t.csv' } }), 'dataset.train: is required with split files');
    assert.equal(
      refusal({ dataset: { ...f, validation: 'file://v.csv' } }),
      'dataset.train: is required with split files',
    );
    assert.equal(
      refusal({ dataset: { ...split, splitColumn: 's' } }),
      'dataset.splitColumn: does not apply to split files: each file is one split',
    );
    const withValidation = { ...split, validation: 'file://v.csv' };
    assert.deepEqual(validateSpec(spec({ dataset: withValidation })).dataset, withValidation);
    assert.equal(
      validateSpec(spec({ dataset: { ...withValidation, validationFraction: 0 } })).dataset.validationFraction,
      0,
    );
    // without a validation file, the fraction carves the validation rows from the train file
    assert.equal(
      validateSpec(spec({ dataset: { ...split, validationFraction: 0.2 } })).dataset.validationFraction,
      0.2,
    );
    assert.equal(
      refusal({ dataset: { ...withValidation, validationFraction: 0.2 } }),
      'dataset.validationFraction: does not apply: the validation file is the validation split',
    );
    assert.equal(
      refusal({ dataset: { ...split, testFraction: 0.2 } }),
      'dataset.testFraction: does not apply: the test file is the test split',
    );
  });

  it('a split column is for csv and jsonl read from one path, and replaces testFraction', () => {
    const one = { format: 'csv', label: 'y', path: 'file://a.csv' };
    assert.deepEqual(validateSpec(spec({ dataset: { ...one, splitColumn: 's' } })).dataset, {
      ...one,
      splitColumn: 's',
    });
    assert.deepEqual(validateSpec(spec({ dataset: { ...one, testFraction: 0.2 } })).dataset, {
      ...one,
      testFraction: 0.2,
    });
    const idx = { format: 'idx', path: 'file://images.idx', label: 'file://labels.idx' };
    assert.deepEqual(validateSpec(spec({ dataset: idx })).dataset, idx);
    assert.equal(
      refusal({ dataset: { ...one, format: 'idx', splitColumn: 's' } }),
      'dataset.splitColumn: applies to csv and jsonl, not idx',
    );
    assert.equal(
      refusal({ dataset: { ...one, splitColumn: 's', testFraction: 0.2 } }),
      'dataset.testFraction: does not apply: the rows marked test is the test split',
    );
  });

  it('allows a batch as large as the training rows, not larger', () => {
    assert.equal(validateSpec(spec({ batchSize: 100 })).batchSize, 100);
    assert.equal(refusal({ batchSize: 101 }), 'batchSize: must be <= dataset.trainLimit (100), got 101');
  });

  it('refuses more replicas than training examples', () => {
    assert.equal(
      refusal({ distributed: { replicas: 101, syncEverySteps: 1 }, batchSize: 1 }),
      'distributed.replicas: 101 replicas leave no training example per shard (100 examples)',
    );
    const one = validateSpec(spec({ distributed: { replicas: 100, syncEverySteps: 1 }, batchSize: 1 }));
    assert.deepEqual(one.distributed, { replicas: 100, syncEverySteps: 1, outer: { name: 'average' } });
  });

  it("a round fits in one epoch of a replica's shard (rows / replicas, rounded down, in batches rounded up)", () => {
    validateSpec(spec({ distributed: { replicas: 2, syncEverySteps: 5 } }));
    assert.equal(
      refusal({ distributed: { replicas: 2, syncEverySteps: 6 } }),
      "distributed.syncEverySteps: must be <= the steps of one epoch of a replica's shard (50 examples / batchSize 10 = 5 steps), got 6",
    );
    validateSpec(spec({ distributed: { replicas: 3, syncEverySteps: 4 } }));
    assert.equal(
      refusal({ distributed: { replicas: 3, syncEverySteps: 5 } }),
      "distributed.syncEverySteps: must be <= the steps of one epoch of a replica's shard (33 examples / batchSize 10 = 4 steps), got 5",
    );
  });
});

describe('spec rules: optimizer clipping', () => {
  it('takes clipNorm or clipValue, not both', () => {
    assert.equal(validateSpec(spec({ optimizer: { ...base.optimizer, clipNorm: 1 } })).optimizer.clipNorm, 1);
    assert.equal(validateSpec(spec({ optimizer: { ...base.optimizer, clipValue: 2 } })).optimizer.clipValue, 2);
    assert.equal(
      refusal({ optimizer: { ...base.optimizer, clipNorm: 1, clipValue: 1 } }),
      'optimizer.clipValue: give clipNorm or clipValue, not both (as Keras)',
    );
  });

  it('the smallest normal float32 is a learning rate, anything below is not', () => {
    assert.equal(learningRateProblem(LEARNING_RATE_MIN), undefined);
    assert.match(learningRateProblem(LEARNING_RATE_MIN * 0.999)!, /^must be >= 1\.17549435\d*e-38 \(the smallest/);
  });
});

describe('spec rules: task, loss and metrics', () => {
  it('the loss must fit the task, classification by default', () => {
    assert.equal(refusal({ loss: 'mse' }), 'loss: classification uses crossentropy');
    assert.equal(refusal({ task: 'binary', loss: 'mse' }), 'loss: binary uses crossentropy');
    assert.equal(
      refusal({ ...iris, task: 'regression', loss: 'crossentropy' }),
      'loss: regression uses mse, mae or huber',
    );
    assert.equal(validateSpec(spec({ loss: 'crossentropy' })).loss, 'crossentropy');
  });

  it('a regression run gets loss mse by default; a classification run no loss field', () => {
    assert.equal(validateSpec(spec({ ...iris, task: 'regression' })).loss, 'mse');
    assert.equal(validateSpec(spec({ ...iris, task: 'regression', loss: 'huber' })).loss, 'huber');
    assert.ok(!('loss' in validateSpec(spec({}))));
    assert.ok(!('loss' in validateSpec(spec({ task: 'binary' }))));
  });

  it('each metric must fit the task and be listed once', () => {
    assert.equal(refusal({ metrics: ['auc'] }), 'metrics[0]: auc does not fit task classification (it fits binary)');
    assert.equal(refusal({ metrics: ['f1', 'precision', 'f1'] }), 'metrics[2]: repeats f1');
    assert.equal(
      refusal({ ...iris, task: 'regression', metrics: ['accuracy'] }),
      'metrics[0]: accuracy does not fit task regression (it fits classification and binary; regression reports loss, mae and mse)',
    );
    assert.deepEqual(validateSpec(spec({ task: 'binary', metrics: ['auc', 'recall'] })).metrics, ['auc', 'recall']);
  });

  it('early stopping may watch accuracy in classification, loss in regression', () => {
    assert.equal(validateSpec(spec({ earlyStopping: { metric: 'accuracy' } })).earlyStopping?.metric, 'accuracy');
    assert.equal(
      validateSpec(spec({ ...iris, task: 'regression', earlyStopping: { metric: 'loss' } })).earlyStopping?.metric,
      'loss',
    );
  });

  it('a regression run watches no accuracy (plateau, keepBest, earlyStopping)', () => {
    assert.equal(
      refusal({ ...iris, task: 'regression', schedule: { name: 'plateau', metric: 'accuracy' } }),
      'schedule.metric: a regression run has no accuracy: use loss',
    );
    assert.equal(
      refusal({
        ...iris,
        task: 'regression',
        checkpoint: { storage: 'file://x', keepBest: { k: 1, metric: 'accuracy' } },
      }),
      'checkpoint.keepBest.metric: a regression run has no accuracy: use loss',
    );
    assert.equal(
      refusal({ ...iris, task: 'regression', earlyStopping: { metric: 'accuracy' } }),
      'earlyStopping.metric: a regression run computes no accuracy: use loss',
    );
    const ok = validateSpec(spec({ ...iris, task: 'regression', schedule: { name: 'plateau', metric: 'loss' } }));
    assert.deepEqual(ok.schedule, { name: 'plateau', metric: 'loss', patience: 1, factor: 0.5, minLearningRate: 0 });
    validateSpec(spec({ schedule: { name: 'plateau', metric: 'accuracy' } }));
  });

  it('a watched metric other than loss and accuracy must be computed (listed in metrics)', () => {
    assert.equal(
      refusal({ task: 'binary', checkpoint: { storage: 'file://x', keepBest: { k: 1, metric: 'auc' } } }),
      'checkpoint.keepBest.metric: the run does not compute auc: add it to metrics (["auc"]) (auc fits task binary)',
    );
    assert.equal(
      refusal({ earlyStopping: { metric: 'f1' } }),
      'earlyStopping.metric: the run does not compute f1: add it to metrics (["f1"]) (f1 fits task classification and binary)',
    );
    const ok = validateSpec(
      spec({
        task: 'binary',
        metrics: ['auc'],
        checkpoint: { storage: 'file://x', keepBest: { k: 1, metric: 'auc' } },
      }),
    );
    assert.deepEqual(ok.checkpoint.keepBest, { k: 1, metric: 'auc' });
    assert.deepEqual(validateSpec(spec({ metrics: ['f1'], earlyStopping: { metric: 'f1' } })).earlyStopping, {
      metric: 'f1',
      patience: 0,
      minDelta: 0,
    });
  });

  it('class weights apply to classification and binary only', () => {
    assert.equal(
      refusal({ ...iris, task: 'regression', classWeights: 'balanced' }),
      'classWeights: applies to classification and binary tasks only (binary: classes "0" and "1")',
    );
    assert.equal(validateSpec(spec({ classWeights: 'balanced' })).classWeights, 'balanced');
    assert.equal(refusal({ classWeights: { a: -1 } }), 'classWeights.a: must be >= 0, got -1');
  });

  it('early stopping needs a validation split and a single-process run', () => {
    assert.equal(
      refusal({
        dataset: { name: 'mnist', trainLimit: 100, validationFraction: 0 },
        earlyStopping: { metric: 'loss' },
      }),
      'dataset.validationFraction: earlyStopping watches the validation split: give it a fraction > 0 (or leave it unset)',
    );
    assert.equal(
      refusal({ distributed: { replicas: 2, syncEverySteps: 1 }, earlyStopping: { metric: 'loss' } }),
      'earlyStopping: is not supported with distributed training yet',
    );
    // without early stopping, no validation split is fine
    assert.equal(
      validateSpec(spec({ dataset: { name: 'mnist', trainLimit: 100, validationFraction: 0 } })).dataset
        .validationFraction,
      0,
    );
  });
});

describe('spec helpers: rows, steps and overrides', () => {
  it('holds out the rounded fraction of rows, at least 1, leaving at least 1; none without a fraction', () => {
    assert.equal(validationRows(100, 0.1), 10);
    assert.equal(validationRows(100, 0.104), 10);
    assert.equal(validationRows(100, 0.001), 1);
    assert.equal(validationRows(10, 0.99), 9);
    assert.equal(validationRows(2, 0.5), 1);
    for (const fraction of [undefined, 0, -0.5, NaN]) assert.equal(validationRows(100, fraction), 0, String(fraction));
    assert.equal(validationRows(1, 0.5), 0);
    assert.equal(validationRows(0, 0.5), 0);
  });

  it('counts the training rows of a built-in dataset without its validation rows; null for a file', () => {
    const rows = (dataset: unknown) => builtinTrainRows({ ...base, dataset } as unknown as RunSpec);
    assert.equal(rows({ name: 'mnist', trainLimit: 100, validationFraction: 0.1 }), 90);
    assert.equal(rows({ name: 'iris' }), 120);
    assert.equal(rows({ format: 'csv', path: 'file://x.csv', label: 'y' }), null);
    const file = validateSpec(spec({ dataset: { format: 'csv', path: 'file://x.csv', label: 'y' } }));
    assert.throws(() => stepCounts(file), /^Error: stepCounts: a file dataset needs its row count \(trainRows\)$/);
    assert.deepEqual(stepCounts(file, 25), { stepsPerEpoch: 3, totalSteps: 3 });
  });

  it('merges objects, replaces everything else, lists included', () => {
    assert.deepEqual(mergeSpec({ freeze: ['a', 'b'] }, { freeze: ['c'] }), { freeze: ['c'] });
    assert.deepEqual(mergeSpec(['a', 'b'], ['c']), ['c']);
    assert.equal(mergeSpec({ a: 1 }, 5), 5);
    assert.equal(mergeSpec({ a: 1 }, null), null);
    assert.deepEqual(mergeSpec({ a: 1 }, undefined), { a: 1 });
    assert.deepEqual(mergeSpec(5, { a: 1 }), { a: 1 });
    assert.deepEqual(mergeSpec({ a: { x: 1 } }, { a: undefined }), { a: undefined });
    assert.deepEqual(mergeSpec({ a: 1 }, { a: { x: 1 } }), { a: { x: 1 } });
  });

  it('keeps the settings of a block whose name stays, drops them when the name changes', () => {
    const adam = { optimizer: { name: 'adam', learningRate: 0.1, beta1: 0.8 } };
    assert.deepEqual(mergeSpec(adam, { optimizer: { name: 'adam', learningRate: 0.2 } }), {
      optimizer: { name: 'adam', learningRate: 0.2, beta1: 0.8 },
    });
    assert.deepEqual(mergeSpec(adam, { optimizer: { learningRate: 0.2 } }), {
      optimizer: { name: 'adam', learningRate: 0.2, beta1: 0.8 },
    });
    assert.deepEqual(mergeSpec(adam, { optimizer: { name: 'sgd', learningRate: 0.2 } }), {
      optimizer: { name: 'sgd', learningRate: 0.2 },
    });
  });

  it('returns plain fields a caller may change and delete', () => {
    const merged = mergeSpec({ a: 1 }, { a: 2, b: 3 }) as Record<string, unknown>;
    merged.a = 4;
    delete merged.b;
    assert.deepEqual(merged, { a: 4 });
  });
});

describe('spec ids: how a refused id is shown', () => {
  const message = (id: unknown): string => {
    try {
      validateRunId(id);
    } catch (err) {
      assert.ok(err instanceof InvalidIdError);
      assert.equal(err.name, 'InvalidIdError');
      return err.message;
    }
    assert.fail(`expected ${String(id)} to be refused`);
  };

  it('names the type of a value that is not a string, showing only primitives', () => {
    assert.equal(message(null), 'invalid run id null: must be a string, got null');
    assert.equal(message(5), 'invalid run id 5: must be a string, got number');
    assert.equal(message(undefined), 'invalid run id undefined: must be a string, got undefined');
    assert.equal(message({ toString: 0 }), 'invalid run id (object): must be a string, got object');
    assert.equal(
      message(() => 1),
      'invalid run id (function): must be a string, got function',
    );
    assert.throws(
      () => validateCheckpointId(7),
      /^InvalidIdError: invalid checkpoint id 7: must be a string, got number$/,
    );
  });

  it('shows an id of up to 40 characters whole, a longer one cut to 32 with its length', () => {
    const forty = `a/${'b'.repeat(38)}`;
    assert.ok(message(forty).startsWith(`invalid run id ${JSON.stringify(forty)}: it contains a path separator "/"`));
    const fortyOne = `a/${'b'.repeat(39)}`;
    assert.ok(
      message(fortyOne).startsWith(
        `invalid run id ${JSON.stringify(`${fortyOne.slice(0, 32)}...`)} (41 characters): it contains a path separator`,
      ),
    );
  });
});
