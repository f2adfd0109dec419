// Built-in datasets through training/data: mnist must be exactly what training/datasets.ts gives (arrays, first-N
// limits, fingerprint), so runs checkpointed before this loader keep resuming; iris is a seeded table split.
import * as assert from 'node:assert/strict';
import { loadDataset } from '../../training/datasets';
import { loadData, validateDataFile } from '../../training/data';

const opts = (seed = 1) => ({ seed, baseDir: process.cwd() });

describe('training/data: built-in datasets', function () {
  for (const [trainLimit, testLimit] of [
    [100, 50],
    [1000, 1],
    [undefined, undefined],
  ] as const) {
    it(`mnist equals loadDataset (trainLimit ${trainLimit}, testLimit ${testLimit}), fingerprint included`, async () => {
      const old = loadDataset({ name: 'mnist', trainLimit, testLimit });
      const data = await loadData({ name: 'mnist', trainLimit, testLimit }, opts(5));
      assert.equal(data.name, 'mnist');
      assert.equal(data.fingerprint, old.fingerprint);
      assert.deepEqual(data.featureShape, [28, 28, 1]);
      assert.equal(data.featureSize, 784);
      assert.equal(data.task, 'classification');
      assert.deepEqual(data.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
      assert.equal(data.normalization, null);
      for (const [mine, theirs] of [
        [data.train, old.train],
        [data.test, old.test],
      ] as const) {
        assert.equal(mine.n, theirs.n);
        assert.ok(mine.y instanceof Int32Array);
        assert.equal(
          Buffer.compare(
            Buffer.from(mine.x.buffer, mine.x.byteOffset, mine.x.byteLength),
            Buffer.from(theirs.images.buffer, theirs.images.byteOffset, theirs.images.byteLength),
          ),
          0,
        );
        assert.deepEqual(Array.from(mine.y), Array.from(theirs.labels));
      }
      assert.equal(data.train.n, trainLimit ?? 60000);
      assert.equal(data.test.n, testLimit ?? 10000);
      assert.equal(data.bytesRead, (data.train.n + data.test.n) * 785);
    });
  }

  it('mnist limits take the first examples of each file, whatever the seed (no random split)', async () => {
    const full = await loadData({ name: 'mnist' }, opts(1));
    const cut = await loadData({ name: 'mnist', trainLimit: 300, testLimit: 20 }, opts(99));
    assert.deepEqual(cut.train.x, full.train.x.subarray(0, 300 * 784));
    assert.deepEqual(Array.from(cut.test.y), Array.from(full.test.y.subarray(0, 20)));
    assert.deepEqual(
      cut.train.x.subarray(0, 784).some((v) => v > 0 && v <= 1),
      true,
    );
    assert.equal(
      (await loadData({ name: 'mnist', trainLimit: 300, testLimit: 20 }, opts(1))).fingerprint,
      cut.fingerprint,
    );
    await assert.rejects(
      loadData({ name: 'mnist', trainLimit: 60001 }, opts()),
      /^DatasetError: dataset\.trainLimit: must be an integer in \[1, 60000\]/,
    );
    await assert.rejects(
      validateDataFile({ name: 'mnist', testLimit: 10001 }, { baseDir: '.' }),
      /^DatasetError: dataset\.testLimit: must be an integer in \[1, 10000\]/,
    );
    await validateDataFile({ name: 'mnist', trainLimit: 60000, testLimit: 10000 }, { baseDir: '.' });
  });

  it('iris: 150 rows, 4 features, 3 classes, a seeded 120/30 split normalised from the train rows', async () => {
    const a = await loadData({ name: 'iris' }, opts(1));
    assert.equal(a.name, 'iris');
    assert.deepEqual(a.featureShape, [4]);
    assert.deepEqual(a.featureNames, ['sepalLength', 'sepalWidth', 'petalLength', 'petalWidth']);
    assert.deepEqual(a.classes, ['setosa', 'versicolor', 'virginica']);
    assert.equal(a.train.n, 120);
    assert.equal(a.test.n, 30);
    assert.equal(a.train.x.length, 480);
    const counts = [0, 0, 0];
    for (const s of [a.train, a.test]) for (const y of s.y) counts[y]++;
    assert.deepEqual(counts, [50, 50, 50]);
    // Normalised with train statistics: each train feature has mean 0 and std 1.
    for (let j = 0; j < 4; j++) {
      let m = 0;
      let v = 0;
      for (let i = 0; i < 120; i++) m += a.train.x[i * 4 + j] / 120;
      for (let i = 0; i < 120; i++) v += (a.train.x[i * 4 + j] - m) ** 2 / 120;
      assert.ok(Math.abs(m) < 1e-5 && Math.abs(v - 1) < 1e-4, `feature ${j}: mean ${m}, var ${v}`);
    }
    assert.ok(a.normalization!.mean[0] > 5 && a.normalization!.mean[0] < 6.5);
    const same = await loadData({ name: 'iris' }, opts(1));
    assert.deepEqual(same.train.x, a.train.x);
    assert.equal(same.fingerprint, a.fingerprint);
    const other = await loadData({ name: 'iris' }, opts(2));
    assert.notDeepEqual(Array.from(other.train.y), Array.from(a.train.y));
    assert.notEqual(other.fingerprint, a.fingerprint);
    const cut = await loadData({ name: 'iris', trainLimit: 10, testLimit: 5 }, opts(1));
    assert.equal(cut.train.n, 10);
    assert.deepEqual(Array.from(cut.test.y), Array.from(a.test.y.subarray(0, 5)));
    await assert.rejects(
      loadData({ name: 'iris', trainLimit: 121 }, opts()),
      /^DatasetError: dataset\.trainLimit: must be an integer in \[1, 120\]/,
    );
    await assert.rejects(
      validateDataFile({ name: 'iris', testLimit: 31 }, { baseDir: '.' }),
      /dataset\.testLimit: must be an integer in \[1, 30\]/,
    );
  });
});
