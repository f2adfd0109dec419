// Splits the data names itself: one file per split (dataset.train, dataset.validation, dataset.test) or a column
// saying each row's split (dataset.splitColumn). The rows keep their file order, the standardisation statistics come
// from the training rows alone, the validation rows drive every choice, and every misuse is refused naming the field.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { choiceMetric, hasValidationSplit, withRunDefaults } from '../../spec/helpers';
import { validateSpec } from '../../spec/validate';
import type { RunSpec } from '../../spec/types';
import { Trainer } from '../../training';
import { clearDataCache, DatasetError, validateDataFile } from '../../training/data';
import { dataSpecOf, loadTaskData } from '../../training/task-data';

const HEADER = 'a,b,label';
/** Rows `a,b,label` with a = i, b = 10 * i, label cycling through the classes given. */
const rows = (from: number, n: number, classes = ['x', 'y']) =>
  Array.from({ length: n }, (_, k) => `${from + k},${10 * (from + k)},${classes[(from + k) % classes.length]}`);

describe('split files and split columns', function () {
  this.timeout(60_000);
  let dir: string;
  const file = (name: string, lines: string[]) => {
    fs.writeFileSync(path.join(dir, name), lines.join('\n') + '\n');
    return `file://${path.join(dir, name)}`;
  };
  const spec = (dataset: Record<string, unknown>, extra: Record<string, unknown> = {}): RunSpec =>
    withRunDefaults(
      validateSpec({
        model: {
          layers: [
            { type: 'dense', units: 8, activation: 'relu' },
            { type: 'dense', units: 3 },
          ],
        },
        dataset: { format: 'csv', label: 'label', ...dataset },
        epochs: 2,
        batchSize: 4,
        seed: 5,
        optimizer: { name: 'adam', learningRate: 0.01 },
        checkpoint: { storage: 'file://unused' },
        ...extra,
      }),
    );

  before(async () => {
    assert.ok(await tf.setBackend('cpu'));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-train-split-files-'));
  });
  beforeEach(() => clearDataCache());
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads one file per split in file order, scales all three with the training rows statistics, merges classes', async () => {
    const train = file('train.csv', [HEADER, ...rows(0, 20)]);
    const validation = file('val.csv', [HEADER, ...rows(100, 6)]);
    // A class seen only in the test file is still one of the model's classes.
    const test = file('test.csv', [HEADER, ...rows(200, 8, ['x', 'y', 'z'])]);
    const s = spec({ train, validation, test });
    assert.equal(s.dataset.validationFraction, undefined, 'a validation file: no fraction recorded');
    assert.equal(hasValidationSplit(s), true);
    assert.deepEqual(choiceMetric(s, 'accuracy'), { name: 'valAccuracy', mode: 'max' });
    const d = await loadTaskData(s, dir);
    assert.deepEqual([d.train.n, d.validation?.n, d.test.n], [20, 6, 8]);
    assert.deepEqual(d.classes, ['x', 'y', 'z']);
    assert.equal(d.outputs, 3);
    // Mean and std of a over 0..19 (population): 9.5 and sqrt(33.25).
    assert.deepEqual(d.normalization!.mean, [9.5, 95]);
    assert.ok(Math.abs(d.normalization!.std[0] - Math.sqrt(33.25)) < 1e-12);
    const raw = (split: typeof d.train, row: number) => split.x[row * 2] * d.normalization!.std[0] + 9.5;
    // File order, each split scaled with the training statistics.
    assert.ok(Math.abs(raw(d.train, 3) - 3) < 1e-4);
    assert.ok(Math.abs(raw(d.validation!, 0) - 100) < 1e-3);
    assert.ok(Math.abs(raw(d.test, 7) - 207) < 1e-3);
    assert.deepEqual(Array.from(d.test.y.slice(0, 3)), [2, 0, 1], 'test rows 200, 201, 202 are z, x, y');
  });

  it('without a validation file, validationFraction carves the validation rows from the train file', async () => {
    const s = spec({ train: file('t2.csv', [HEADER, ...rows(0, 30)]), test: file('s2.csv', [HEADER, ...rows(50, 5)]) });
    assert.equal(s.dataset.validationFraction, 0.1);
    const d = await loadTaskData(s, dir);
    assert.deepEqual([d.train.n, d.validation?.n, d.test.n], [27, 3, 5]);
    // The statistics are the 27 training rows' alone (a = 0..29 without the carved three), never the validation's.
    const raw = (x: Float32Array) =>
      Array.from({ length: x.length / 2 }, (_, r) => x[r * 2] * d.normalization!.std[0] + d.normalization!.mean[0]);
    const trainA = raw(d.train.x).map(Math.round);
    const mean = trainA.reduce((a, b) => a + b, 0) / trainA.length;
    assert.ok(Math.abs(d.normalization!.mean[0] - mean) < 1e-4, `mean ${d.normalization!.mean[0]} vs ${mean}`);
    assert.notEqual(mean, 14.5, 'not the mean of all 30 rows');
    assert.deepEqual(
      [...trainA, ...raw(d.validation!.x).map(Math.round)].sort((p, q) => p - q),
      [...Array(30).keys()],
    );
  });

  it('standardize: false keeps the values as read (token ids for an embedding), and is another dataset', async () => {
    const path1 = file('ids.csv', [HEADER, ...rows(0, 40)]);
    const raw = await loadTaskData(spec({ path: path1, standardize: false }), dir);
    assert.equal(raw.normalization, null);
    const all = [...Array.from(raw.train.x), ...Array.from(raw.validation!.x), ...Array.from(raw.test.x)];
    // a = 0..39 and b = 10 a, untouched.
    assert.deepEqual(
      all.filter((_, i) => i % 2 === 0).sort((p, q) => p - q),
      [...Array(40).keys()],
    );
    assert.ok(all.every((v, i) => i % 2 === 0 || Number.isInteger(v / 10)));
    const scaled = await loadTaskData(spec({ path: path1 }), dir);
    assert.ok(scaled.normalization);
    assert.notEqual(scaled.fingerprint, raw.fingerprint);
    assert.throws(() => spec({ path: path1, standardize: 'no' }), /dataset\.standardize/);
  });

  it('refuses split files that do not agree, naming the file that differs', async () => {
    const train = file('t3.csv', [HEADER, ...rows(0, 10)]);
    const test = file('s3.csv', ['a,c,label', '1,2,x']);
    await assert.rejects(loadTaskData(spec({ train, test }), dir), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.equal(e.field, 'dataset.test');
      assert.match(e.message, /has the features a, c, but dataset\.train has a, b: the split files must have the same/);
      return true;
    });
    // The quick check before start reads the same way.
    await assert.rejects(
      validateDataFile(dataSpecOf(spec({ train, test })), { baseDir: dir }),
      /dataset\.test: has the features a, c/,
    );
    // A problem inside one file names that file's field, not dataset.path.
    const bad = file('s4.csv', [HEADER, '1,oops,x']);
    await assert.rejects(loadTaskData(spec({ train, test: bad }), dir), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.equal(e.field, 'dataset.features');
      assert.match(e.message, /"oops" at line 2 of file:\/\/\S*s4\.csv/);
      return true;
    });
    const empty = file('s5.csv', [HEADER]);
    await assert.rejects(
      loadTaskData(spec({ train, test: empty }), dir),
      /^DatasetError: dataset\.test: file:\/\/\S*s5\.csv has a header row but no data rows/,
    );
  });

  it('refuses, before anything starts, the fields that do not go together, naming each', () => {
    const t = 'file://t.csv';
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ path: t, train: t, test: t }, /dataset\.path: give either path or the split files train and test, not both/],
      [{ train: t }, /dataset\.test: is required with split files/],
      [
        { train: t, test: t, testFraction: 0.3 },
        /dataset\.testFraction: does not apply: the test file is the test split/,
      ],
      [{ train: t, test: t, validation: t, validationFraction: 0.2 }, /dataset\.validationFraction: does not apply/],
      [{ train: t, test: t, splitColumn: 's' }, /dataset\.splitColumn: does not apply to split files/],
      [{ path: t, splitColumn: 's', testFraction: 0.2 }, /dataset\.testFraction: does not apply: the rows marked test/],
      [{ format: 'idx', path: t, splitColumn: 's' }, /dataset\.splitColumn: applies to csv and jsonl, not idx/],
      [{}, /dataset\.path: is required \(or the split files train and test\)/],
    ];
    for (const [dataset, message] of cases) assert.throws(() => spec(dataset), message, JSON.stringify(dataset));
  });

  it('a split column names each row split (csv and jsonl), is never a feature, and its values are checked', async () => {
    const lines = [
      'a,b,split,label',
      ...rows(0, 12).map((r, i) => {
        const [a, b, label] = r.split(',');
        return `${a},${b},${i < 8 ? 'train' : i < 10 ? 'Validation' : 'test'},${label}`;
      }),
    ];
    const s = spec({ path: file('col.csv', lines), splitColumn: 'split' });
    assert.equal(hasValidationSplit(s), true);
    const d = await loadTaskData(s, dir);
    assert.deepEqual([d.train.n, d.validation?.n, d.test.n], [8, 2, 2]);
    assert.deepEqual(d.featureNames, ['a', 'b']);
    assert.deepEqual(d.normalization!.mean, [3.5, 35]);

    const jsonl = (i: number, split: unknown) => JSON.stringify({ a: i, b: 10 * i, split, label: i % 2 ? 'y' : 'x' });
    const js = spec({
      format: 'jsonl',
      path: file(
        'col.jsonl',
        [0, 1, 2, 3, 4, 5].map((i) => jsonl(i, i < 4 ? 'train' : i === 4 ? 'validation' : 'test')),
      ),
      splitColumn: 'split',
    });
    const dj = await loadTaskData(js, dir);
    assert.deepEqual([dj.train.n, dj.validation?.n, dj.test.n], [4, 1, 1]);

    const wrong = spec({
      path: file('col2.csv', ['a,b,split,label', '1,2,train,x', '3,4,holdout,y']),
      splitColumn: 'split',
    });
    await assert.rejects(
      loadTaskData(wrong, dir),
      /dataset\.splitColumn: "split" is "holdout" at line 3 of file:\/\/\S*col2\.csv; a split is one of train, validation, test/,
    );
    const noTest = spec({
      path: file('col3.csv', ['a,b,split,label', '1,2,train,x', '3,4,validation,y']),
      splitColumn: 'split',
    });
    await assert.rejects(loadTaskData(noTest, dir), /dataset\.splitColumn: no row is marked test/);
    const missing = spec({ path: file('col4.csv', [HEADER, '1,2,x']), splitColumn: 'split' });
    await assert.rejects(
      loadTaskData(missing, dir),
      /dataset\.splitColumn: no column "split" in file:\/\/\S*col4\.csv/,
    );
    const asFeature = spec({ path: file('col5.csv', lines), splitColumn: 'split', features: ['a', 'split'] });
    await assert.rejects(
      loadTaskData(asFeature, dir),
      /dataset\.features\[1\]: "split" is the split column, never a feature/,
    );
    const jsBad = spec({
      format: 'jsonl',
      path: file('col6.jsonl', [jsonl(0, 'train'), jsonl(1, 3)]),
      splitColumn: 'split',
    });
    await assert.rejects(
      loadTaskData(jsBad, dir),
      /field "split" at line 2 of file:\/\/\S*col6\.jsonl is 3; a split is one of/,
    );
  });

  it('a split column without validation rows: carved by validationFraction, refused when that is 0', async () => {
    const lines = [
      'a,b,split,label',
      ...rows(0, 20).map((r, i) => r.replace(/,(\w)$/, `,${i < 16 ? 'train' : 'test'},$1`)),
    ];
    const f = file('col7.csv', lines);
    const d = await loadTaskData(spec({ path: f, splitColumn: 'split' }), dir);
    assert.deepEqual([d.train.n, d.validation?.n, d.test.n], [14, 2, 4]);
    await assert.rejects(
      loadTaskData(spec({ path: f, splitColumn: 'split', validationFraction: 0 }), dir),
      /dataset\.splitColumn: no row of "split" is marked validation and dataset\.validationFraction is 0/,
    );
  });

  it('trains on split files and resumes exactly (the split is the same on every load)', async () => {
    const train = file('t8.csv', [HEADER, ...rows(0, 24)]);
    const validation = file('v8.csv', [HEADER, ...rows(40, 6)]);
    const test = file('s8.csv', [HEADER, ...rows(60, 6)]);
    const s = spec({ train, validation, test }, { model: { layers: [{ type: 'dense', units: 2 }] } });
    const full = await Trainer.create(s);
    const first = await Trainer.create(s);
    try {
      await full.train({ maxSteps: 12 });
      await first.train({ maxSteps: 5 });
      clearDataCache(); // the resumed trainer reads the three files again
      const second = await Trainer.fromSnapshot(s, first.snapshot());
      try {
        await second.train({ maxSteps: 12 });
        assert.equal(second.weightsSha256(), full.weightsSha256());
        assert.deepEqual(second.state.metrics, full.state.metrics);
        assert.equal(full.state.metrics.evals.at(-1)!.split, 'test');
        assert.ok(full.state.metrics.evals.some((e) => e.split === 'validation'));
      } finally {
        second.dispose();
      }
    } finally {
      full.dispose();
      first.dispose();
    }
  });
});
