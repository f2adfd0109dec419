// Datasets from files (csv, jsonl, idx) through training/data: real files in a temp dir, decoded, split by the
// seed, normalised from the train split, fingerprinted over the bytes read; every bad input refused naming the
// spec field, both by the quick check `start` runs and by the loader itself.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  clearDataCache,
  loadData,
  validateDataFile,
  VALIDATE_PREFIX_BYTES,
  type DataSpec,
  type FileDataSpec,
  type LoadedData,
} from '../../training/data';

const FIXTURES = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'data');

let dir: string;
const write = (name: string, content: string | Uint8Array) => {
  fs.writeFileSync(path.join(dir, name), content);
  return `file://${name}`;
};
const load = (spec: DataSpec, seed = 1, maxBytes?: number) => loadData(spec, { seed, baseDir: dir, maxBytes });

/** A table whose first feature `id` tells each row apart, so split rows can be traced back. */
function idTable(n: number, label: (i: number) => string, extra: (i: number) => number[] = (i) => [i * i]): string {
  const lines = ['id,v,label'];
  for (let i = 0; i < n; i++) lines.push([i, ...extra(i), label(i)].join(','));
  return lines.join('\n') + '\n';
}

/** Undoes the normalisation of feature j for every row of a split. */
function raw(data: LoadedData, split: 'train' | 'test', j: number): number[] {
  const s = data[split];
  const size = data.featureSize;
  const { mean, std } = data.normalization!;
  return Array.from({ length: s.n }, (_, i) => s.x[i * size + j] * std[j] + mean[j]);
}
const ids = (data: LoadedData, split: 'train' | 'test') => raw(data, split, 0).map((v) => Math.round(v) + 0); // no -0

/** Both the quick check and the loader refuse the spec with this message. */
async function refused(spec: DataSpec, message: RegExp, opts: { maxBytes?: number; loadOnly?: boolean } = {}) {
  if (!opts.loadOnly) {
    await assert.rejects(validateDataFile(spec, { baseDir: dir, maxBytes: opts.maxBytes }), (err: Error) => {
      assert.match(err.message, message);
      assert.equal(err.name, 'DatasetError');
      return true;
    });
  }
  await assert.rejects(load(spec, 1, opts.maxBytes), (err: Error) => {
    assert.match(err.message, message);
    assert.equal(err.name, 'DatasetError');
    return true;
  });
}

function idx(type: number, dims: number[], values: number[]): Uint8Array {
  const size = { 0x08: 1, 0x0d: 4, 0x0c: 4 }[type]!;
  const buf = new Uint8Array(4 + 4 * dims.length + values.length * size);
  const view = new DataView(buf.buffer);
  buf[2] = type;
  buf[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const off = 4 + 4 * dims.length;
  values.forEach((v, i) => {
    if (type === 0x08) view.setUint8(off + i, v);
    else if (type === 0x0c) view.setInt32(off + 4 * i, v, false);
    else view.setFloat32(off + 4 * i, v, false);
  });
  return buf;
}

describe('training/data: datasets from files', function () {
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-data-'));
    clearDataCache();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('csv', () => {
    it('string labels become sorted classes; every row lands in exactly one split with its own label', async () => {
      const names = ['virginica', 'setosa', 'versicolor'];
      const p = write(
        't.csv',
        idTable(10, (i) => names[i % 3]),
      );
      const data = await load({ format: 'csv', path: p, label: 'label', testFraction: 0.3 });
      assert.equal(data.name, p);
      assert.equal(data.task, 'classification');
      assert.deepEqual(data.classes, ['setosa', 'versicolor', 'virginica']);
      assert.deepEqual(data.featureShape, [2]);
      assert.equal(data.featureSize, 2);
      assert.deepEqual(data.featureNames, ['id', 'v']);
      assert.equal(data.train.n, 7);
      assert.equal(data.test.n, 3);
      assert.ok(data.train.y instanceof Int32Array);
      const all = [...ids(data, 'train'), ...ids(data, 'test')];
      assert.deepEqual(
        [...all].sort((a, b) => a - b),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      for (const split of ['train', 'test'] as const) {
        ids(data, split).forEach((id, k) => {
          assert.equal(data.classes![data[split].y[k]], names[id % 3], `${split} row ${k} (id ${id})`);
          assert.ok(Math.abs(raw(data, split, 1)[k] - id * id) < 1e-3);
        });
      }
      assert.equal(data.bytesRead, fs.statSync(path.join(dir, 't.csv')).size);
      assert.match(data.fingerprint, /^[0-9a-f]{64}$/);
    });

    it('integer labels are classes named by value and ordered numerically; a numeric label is not guessed to be a target', async () => {
      const p = write(
        't.csv',
        idTable(9, (i) => ['10', '2', '01'][i % 3]),
      );
      const data = await load({ format: 'csv', path: p, label: 'label' });
      assert.deepEqual(data.classes, ['1', '2', '10']);
      ids(data, 'train').forEach((id, k) => assert.equal(data.classes![data.train.y[k]], ['10', '2', '1'][id % 3]));
      // Decimal labels without task: regression stay classes (sorted as text).
      const q = write(
        'f.csv',
        idTable(6, (i) => ['0.5', '1.25'][i % 2]),
      );
      const cls = await load({ format: 'csv', path: q, label: 'label', testFraction: 0.5 });
      assert.equal(cls.task, 'classification');
      assert.deepEqual(cls.classes, ['0.5', '1.25']);
    });

    it('RFC 4180: BOM, CRLF, quoted names, commas, doubled quotes and line breaks inside fields', async () => {
      fs.copyFileSync(path.join(FIXTURES, 'rfc4180.csv'), path.join(dir, 'q.csv'));
      const data = await load({ format: 'csv', path: 'file://q.csv', label: 'kind', testFraction: 0.4 });
      assert.deepEqual(data.featureNames, ['sepal, length', 'width']);
      assert.deepEqual(data.classes, ['big "virginica", tall', 'multi\r\nline', 'setosa']);
      assert.equal(data.train.n + data.test.n, 5);
      // The line number of an error counts the line break inside the quoted field.
      write('bad.csv', 'a,b,label\n1,2,"two\nlines"\n3,x,y\n');
      await refused(
        { format: 'csv', path: 'file://bad.csv', label: 'label' },
        /^dataset\.features: column "b" has the non-numeric value "x" at line 4 of file:\/\/bad\.csv/,
      );
    });

    it('features picks and orders columns', async () => {
      const p = write('t.csv', 'a,b,c,label\n1,2,3,x\n4,5,6,y\n7,8,9,x\n1,1,1,y\n2,2,2,x\n');
      const data = await load({ format: 'csv', path: p, label: 'label', features: ['c', 'a'] });
      assert.deepEqual(data.featureNames, ['c', 'a']);
      assert.deepEqual(data.featureShape, [2]);
      const c = raw(data, 'train', 0).map(Math.round);
      const a = raw(data, 'train', 1).map(Math.round);
      const rows = new Map([
        [3, 1],
        [6, 4],
        [9, 7],
        [1, 1],
        [2, 2],
      ]);
      c.forEach((cv, k) => assert.equal(a[k], rows.get(cv)));
    });

    it('task regression: the label is a float target, no classes', async () => {
      const p = write(
        'r.csv',
        idTable(10, (i) => String(i / 4 - 1)),
      );
      const data = await load({ format: 'csv', path: p, label: 'label', task: 'regression' });
      assert.equal(data.task, 'regression');
      assert.equal(data.classes, null);
      assert.ok(data.train.y instanceof Float32Array && data.test.y instanceof Float32Array);
      for (const split of ['train', 'test'] as const) {
        ids(data, split).forEach((id, k) => assert.equal(data[split].y[k], Math.fround(id / 4 - 1)));
      }
      write('rbad.csv', 'a,y\n1,0.5\n2,high\n3,1\n');
      await refused(
        { format: 'csv', path: 'file://rbad.csv', label: 'y', task: 'regression' },
        /^dataset\.label: "y" has the non-numeric value "high" at line 3 of file:\/\/rbad\.csv, but task regression needs a number/,
      );
    });

    it('normalisation statistics come from the train split only and apply to both splits', async () => {
      const p = write(
        't.csv',
        idTable(
          20,
          (i) => (i % 2 ? 'a' : 'b'),
          (i) => [i * i, 7],
        ).replace('id,v,label', 'id,v,k,label'),
      );
      const data = await load({ format: 'csv', path: p, label: 'label', testFraction: 0.25 }, 3);
      const { mean, std } = data.normalization!;
      const trainIds = ids(data, 'train');
      const testIds = ids(data, 'test');
      assert.equal(trainIds.length, 15);
      const vs = trainIds.map((i) => i * i);
      const m = vs.reduce((a, b) => a + b, 0) / vs.length;
      const s = Math.sqrt(vs.reduce((a, b) => a + (b - m) ** 2, 0) / vs.length);
      assert.ok(Math.abs(mean[1] - m) < 1e-9, `mean ${mean[1]} vs ${m}`);
      assert.ok(Math.abs(std[1] - s) < 1e-9, `std ${std[1]} vs ${s}`);
      const allMean = Array.from({ length: 20 }, (_, i) => i * i).reduce((a, b) => a + b, 0) / 20;
      assert.notEqual(Math.round(mean[1] * 1000), Math.round(allMean * 1000), 'the test rows must not enter the mean');
      // The test split is scaled with the train statistics.
      testIds.forEach((id, k) => {
        assert.ok(Math.abs(data.test.x[k * 3 + 1] - Math.fround((id * id - m) / s)) < 1e-5);
      });
      // A constant column: std stored as 1, values 0.
      assert.equal(mean[2], 7);
      assert.equal(std[2], 1);
      for (let k = 0; k < data.train.n; k++) assert.equal(data.train.x[k * 3 + 2], 0);
    });

    it('the split is fixed by the seed: same seed same split, another seed another; limits cut that split', async () => {
      const p = write(
        't.csv',
        idTable(50, (i) => String(i % 4)),
      );
      const spec: FileDataSpec = { format: 'csv', path: p, label: 'label' };
      const a = await load(spec, 7);
      clearDataCache();
      const b = await load(spec, 7);
      assert.notEqual(a, b);
      assert.deepEqual(b.train.x, a.train.x);
      assert.deepEqual(b.test.y, a.test.y);
      assert.equal(b.fingerprint, a.fingerprint);
      const c = await load(spec, 8);
      assert.notDeepEqual(ids(c, 'train'), ids(a, 'train'));
      assert.notEqual(c.fingerprint, a.fingerprint);
      assert.equal(a.train.n, 40);
      assert.equal(a.test.n, 10);
      const cut = await load({ ...spec, trainLimit: 12, testLimit: 3 }, 7);
      assert.equal(cut.train.n, 12);
      assert.equal(cut.test.n, 3);
      assert.deepEqual(ids(cut, 'train'), ids(a, 'train').slice(0, 12));
      assert.deepEqual(ids(cut, 'test'), ids(a, 'test').slice(0, 3));
      assert.notEqual(cut.fingerprint, a.fingerprint);
      // Not the identity order: the split is a permutation.
      assert.notDeepEqual(
        ids(a, 'train'),
        [...ids(a, 'train')].sort((x, y) => x - y),
      );
    });

    it('the fingerprint covers every byte read and the shaping options, not where the file lives', async () => {
      const text = idTable(30, (i) => String(i % 3));
      const p = write('t.csv', text);
      const spec: FileDataSpec = { format: 'csv', path: p, label: 'label' };
      const base = await load(spec);
      assert.equal(await load(spec), base, 'served from the cache');
      // One digit changed in place (same size); a fresh mtime so the edit is seen.
      const edited = text.replace('\n17,289,', '\n17,288,');
      assert.notEqual(edited, text);
      assert.equal(edited.length, text.length);
      fs.writeFileSync(path.join(dir, 't.csv'), edited);
      const later = new Date(Date.now() + 5000);
      fs.utimesSync(path.join(dir, 't.csv'), later, later);
      const changed = await load(spec);
      assert.notEqual(changed.fingerprint, base.fingerprint);
      // The same bytes elsewhere: the same fingerprint (a moved file still resumes).
      fs.mkdirSync(path.join(dir, 'sub'));
      fs.writeFileSync(path.join(dir, 'sub', 'moved.csv'), text);
      const moved = await load({ ...spec, path: `file://${path.join(dir, 'sub', 'moved.csv')}` });
      assert.equal(moved.fingerprint, base.fingerprint);
      const others = await Promise.all([
        load({ ...spec, testFraction: 0.3 }),
        load({ ...spec, features: ['v', 'id'] }),
        load({ ...spec, trainLimit: 5 }),
        load(spec, 2),
        load({ format: 'csv', path: p, label: 'v' }),
      ]);
      for (const o of others) assert.notEqual(o.fingerprint, changed.fingerprint);
      assert.equal(new Set(others.map((o) => o.fingerprint)).size, others.length);
    });
  });

  describe('jsonl', () => {
    it('numbers and arrays of numbers as features, string labels', async () => {
      const lines = Array.from({ length: 12 }, (_, i) =>
        JSON.stringify({ id: i, emb: [i, -i, 0.5], label: i % 3 === 0 ? 'cat' : 'dog', note: 1 }),
      );
      lines.splice(4, 0, '   '); // blank lines are skipped
      const p = write('t.jsonl', lines.join('\n') + '\n');
      const data = await load({ format: 'jsonl', path: p, label: 'label', features: ['id', 'emb'] });
      assert.deepEqual(data.featureNames, ['id', 'emb[0]', 'emb[1]', 'emb[2]']);
      assert.deepEqual(data.featureShape, [4]);
      assert.deepEqual(data.classes, ['cat', 'dog']);
      assert.equal(data.train.n + data.test.n, 12);
      const trainIds = ids(data, 'train');
      trainIds.forEach((id, k) => {
        assert.equal(data.classes![data.train.y[k]], id % 3 === 0 ? 'cat' : 'dog');
        assert.ok(Math.abs(raw(data, 'train', 2)[k] + id) < 1e-4);
      });
      // Default features: every field of the first row but the label; numeric labels sort numerically.
      const q = write('n.jsonl', [0, 1, 2, 3, 4, 5].map((i) => JSON.stringify({ a: i, y: [10, 9][i % 2] })).join('\n'));
      const num = await load({ format: 'jsonl', path: q, label: 'y' });
      assert.deepEqual(num.featureNames, ['a']);
      assert.deepEqual(num.classes, ['9', '10']);
      const r = await load({ format: 'jsonl', path: q, label: 'y', task: 'regression' });
      assert.equal(r.classes, null);
      ids(r, 'train').forEach((a, k) => assert.equal(r.train.y[k], [10, 9][a % 2]));
    });

    it('refuses bad lines naming the field and the line', async () => {
      const ok = (i: number) => JSON.stringify({ a: i, arr: [1, 2], y: 'c' + (i % 2) });
      const cases: [string, string[], Partial<FileDataSpec>, RegExp][] = [
        ['not json', [ok(0), '{"a": 1,', ok(2)], {}, /^dataset\.path: line 2 of file:\/\/t\.jsonl is not valid JSON/],
        [
          'not an object',
          [ok(0), '[1,2]', ok(2)],
          {},
          /^dataset\.path: line 2 of file:\/\/t\.jsonl is not a JSON object/,
        ],
        [
          'no label',
          ['{"a":1}', ok(1)],
          {},
          /^dataset\.label: no field "y" in the first row \(line 1\) of file:\/\/t\.jsonl \(fields: a\)/,
        ],
        [
          'label missing later',
          [ok(0), ok(1), '{"a":1,"arr":[1,2]}'],
          {},
          /^dataset\.label: line 3 of file:\/\/t\.jsonl has no field "y"/,
        ],
        [
          'feature missing later',
          [ok(0), '{"arr":[1,2],"y":"c"}'],
          {},
          /^dataset\.features: line 2 of file:\/\/t\.jsonl has no field "a"/,
        ],
        [
          'string feature',
          [ok(0), '{"a":"3","arr":[1,2],"y":"c"}'],
          { features: ['arr', 'a'] },
          /^dataset\.features\[1\]: field "a" has the non-numeric value "3" at line 2/,
        ],
        [
          'array length',
          [ok(0), '{"a":1,"arr":[1],"y":"c"}'],
          {},
          /^dataset\.features: field "arr" at line 2 of file:\/\/t\.jsonl is \[1\], but the first row \(line 1\) has an array of 2 numbers/,
        ],
        [
          'null label',
          [ok(0), '{"a":1,"arr":[1,2],"y":null}'],
          {},
          /^dataset\.label: field "y" at line 2 of file:\/\/t\.jsonl is null/,
        ],
        [
          'missing feature in spec',
          [ok(0)],
          { features: ['a', 'b'] },
          /^dataset\.features\[1\]: no field "b" in the first row/,
        ],
      ];
      for (const [name, lines, extra, message] of cases) {
        write('t.jsonl', lines.join('\n') + '\n');
        clearDataCache();
        await refused({ format: 'jsonl', path: 'file://t.jsonl', label: 'y', ...extra }, message).catch(
          (err: Error) => {
            throw new Error(`${name}: ${err.message}`);
          },
        );
      }
      write('e.jsonl', '\n\n');
      await refused(
        { format: 'jsonl', path: 'file://e.jsonl', label: 'y' },
        /^dataset\.path: file:\/\/e\.jsonl is empty/,
      );
    });
  });

  describe('idx', () => {
    it('ubyte images with ubyte labels: featureShape from the dims, integer classes', async () => {
      const n = 20;
      const pixels = Array.from({ length: n * 6 }, (_, k) => (Math.floor(k / 6) * 7 + (k % 6)) % 256);
      const p = write('x.idx', idx(0x08, [n, 2, 3], pixels));
      const l = write(
        'y.idx',
        idx(
          0x08,
          [n],
          Array.from({ length: n }, (_, i) => (i * 5) % 4),
        ),
      );
      const data = await load({ format: 'idx', path: p, label: l });
      assert.deepEqual(data.featureShape, [2, 3]);
      assert.equal(data.featureSize, 6);
      assert.equal(data.featureNames, null);
      assert.deepEqual(data.classes, ['0', '1', '2', '3']);
      assert.equal(data.train.n, 16);
      assert.equal(data.test.n, 4);
      assert.equal(data.normalization!.mean.length, 6);
      const all = [...ids(data, 'train'), ...ids(data, 'test')].map((v) => v / 7);
      assert.deepEqual(
        [...all].sort((a, b) => a - b),
        Array.from({ length: n }, (_, i) => i),
      );
      ids(data, 'train').forEach((v, k) => assert.equal(data.train.y[k], ((v / 7) * 5) % 4));
      assert.equal(
        data.bytesRead,
        fs.statSync(path.join(dir, 'x.idx')).size + fs.statSync(path.join(dir, 'y.idx')).size,
      );
    });

    it('float32 features with float32 regression targets', async () => {
      const n = 10;
      const p = write(
        'x.idx',
        idx(
          0x0d,
          [n, 3],
          Array.from({ length: n * 3 }, (_, k) => k * 0.25),
        ),
      );
      const l = write(
        'y.idx',
        idx(
          0x0d,
          [n, 1],
          Array.from({ length: n }, (_, i) => i / 3),
        ),
      );
      const data = await load({ format: 'idx', path: p, label: l, task: 'regression', testFraction: 0.5 });
      assert.deepEqual(data.featureShape, [3]);
      raw(data, 'train', 0).forEach((v, k) => {
        const i = Math.round(v / 0.75);
        assert.equal(data.train.y[k], Math.fround(i / 3));
      });
    });

    it('refuses a non-IDX file, a truncated one and a label count that does not match', async () => {
      const l = write('y.idx', idx(0x08, [4], [0, 1, 0, 1]));
      write('bad.idx', 'hello world');
      await refused(
        { format: 'idx', path: 'file://bad.idx', label: l },
        /^dataset\.path: file:\/\/bad\.idx is not an IDX file/,
      );
      const full = idx(0x08, [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
      write('short.idx', full.subarray(0, full.length - 1));
      await refused(
        { format: 'idx', path: 'file://short.idx', label: l },
        /^dataset\.path: file:\/\/short\.idx has 19 bytes, but its header \(ubyte, dims 4x2\) needs 20/,
      );
      write('x5.idx', idx(0x08, [5, 2], Array(10).fill(1)));
      await refused(
        { format: 'idx', path: 'file://x5.idx', label: l },
        /^dataset\.label: file:\/\/y\.idx has 4 labels, but file:\/\/x5\.idx has 5 examples/,
      );
      await refused(
        { format: 'idx', path: 'file://x5.idx', label: 'file://none.idx' },
        /^dataset\.label: file:\/\/none\.idx .*does not exist/,
      );
    });
  });

  describe('bad input is refused naming the field', () => {
    const good = 'a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n9,10,x\n';
    it('a file that does not exist, an empty file, a header without rows', async () => {
      await refused(
        { format: 'csv', path: 'file://missing.csv', label: 'label' },
        new RegExp(
          `^dataset\\.path: file://missing\\.csv \\(${dir.replace(/[.\\/]/g, '\\$&')}/missing\\.csv\\) does not exist`,
        ),
      );
      write('empty.csv', '');
      await refused(
        { format: 'csv', path: 'file://empty.csv', label: 'label' },
        /^dataset\.path: file:\/\/empty\.csv is empty/,
      );
      write('blank.csv', '\n\n');
      await refused(
        { format: 'csv', path: 'file://blank.csv', label: 'label' },
        /^dataset\.path: file:\/\/blank\.csv is empty/,
      );
      write('header.csv', 'a,b,label\n');
      await refused(
        { format: 'csv', path: 'file://header.csv', label: 'label' },
        /^dataset\.path: file:\/\/header\.csv has a header row but no data rows/,
      );
      fs.mkdirSync(path.join(dir, 'adir'));
      await refused({ format: 'csv', path: 'file://adir', label: 'label' }, /^dataset\.path: .*is a directory/);
    });

    it('a missing label column lists the columns; a missing feature names its index', async () => {
      const p = write('t.csv', good);
      await refused(
        { format: 'csv', path: p, label: 'species' },
        /^dataset\.label: no column "species" in file:\/\/t\.csv \(columns: a, b, label\)/,
      );
      await refused(
        { format: 'csv', path: p, label: 'label', features: ['a', 'b', 'c'] },
        /^dataset\.features\[2\]: no column "c" in file:\/\/t\.csv \(columns: a, b, label\)/,
      );
      await refused(
        { format: 'csv', path: p, label: 'label', features: ['a', 'label'] },
        /^dataset\.features\[1\]: "label" is the label column/,
      );
      await refused(
        { format: 'csv', path: p, label: 'label', features: ['a', 'a'] },
        /^dataset\.features\[1\]: repeats dataset\.features\[0\]/,
      );
    });

    it('a non-numeric or empty feature value names the column and the 1-based line', async () => {
      write('t.csv', 'a,b,label\n1,2,x\n3,4,y\n5,six,x\n');
      await refused(
        { format: 'csv', path: 'file://t.csv', label: 'label' },
        /^dataset\.features: column "b" has the non-numeric value "six" at line 4 of file:\/\/t\.csv/,
      );
      await refused(
        { format: 'csv', path: 'file://t.csv', label: 'label', features: ['a', 'b'] },
        /^dataset\.features\[1\]: column "b" has the non-numeric value "six" at line 4/,
      );
      write('e.csv', 'a,b,label\n1,2,x\n3,,y\n');
      await refused(
        { format: 'csv', path: 'file://e.csv', label: 'label' },
        /^dataset\.features: column "b" has an empty value at line 3/,
      );
      write('l.csv', 'a,b,label\n1,2,x\n3,4, \n');
      await refused(
        { format: 'csv', path: 'file://l.csv', label: 'label' },
        /^dataset\.label: column "label" is empty at line 3/,
      );
    });

    it('malformed CSV: field count, unclosed quote, stray quote, unnamed or repeated header', async () => {
      const cases: [string, RegExp][] = [
        ['a,b,label\n1,2,x\n3,4\n', /^dataset\.path: line 3 of file:\/\/t\.csv has 2 fields, the header has 3/],
        [
          'a,b,label\n1,2,x\n3,4,"y\n5,6,x\n',
          /^dataset\.path: file:\/\/t\.csv: line 3 opens a quoted field that is never closed/,
        ],
        ['a,b,label\n1,2,x\n3,4,"y"z\n', /^dataset\.path: file:\/\/t\.csv: line 3 has text after the closing quote/],
        ['a,b,label\n1,2,x\n3,4,y"z\n', /^dataset\.path: file:\/\/t\.csv: line 3 has a quote inside an unquoted field/],
        ['a,,label\n1,2,x\n', /^dataset\.path: file:\/\/t\.csv: column 2 of the header row has no name/],
        ['a,a,label\n1,2,x\n', /^dataset\.path: file:\/\/t\.csv: the header names column "a" twice/],
      ];
      for (const [text, message] of cases) {
        write('t.csv', text);
        clearDataCache();
        await refused({ format: 'csv', path: 'file://t.csv', label: 'label' }, message);
      }
      write('bin.csv', new Uint8Array([0x61, 0x2c, 0x62, 0x0a, 0xff, 0xfe, 0x0a]));
      await refused(
        { format: 'csv', path: 'file://bin.csv', label: 'b' },
        /^dataset\.path: file:\/\/bin\.csv is not UTF-8 text/,
      );
    });

    it('spec values out of range: testFraction, limits, task, format, path scheme', async () => {
      const p = write('t.csv', good);
      const base: FileDataSpec = { format: 'csv', path: p, label: 'label' };
      const cases: [DataSpec, RegExp][] = [
        [{ ...base, testFraction: 1 }, /^dataset\.testFraction: must be a number in \(0, 1\), got 1/],
        [{ ...base, testFraction: 0.01 }, /^dataset\.testFraction: 0\.01 of 5 rows leaves no test rows/],
        [
          { ...base, trainLimit: 5 },
          /^dataset\.trainLimit: must be an integer in \[1, 4\] \(4 rows in the train split\), got 5/,
        ],
        [{ ...base, testLimit: 0 }, /^dataset\.testLimit: must be a positive integer, got 0/],
        [
          { ...base, task: 'ranking' as never },
          /^dataset\.task: must be classification, regression or binary, got "ranking"/,
        ],
        [{ ...base, format: 'xlsx' as never }, /^dataset\.format: must be one of csv, jsonl, idx/],
        [
          { ...base, path: 'data.csv' },
          /^dataset\.path: "data\.csv" is not a URL: use file:\/\/PATH, s3:\/\/BUCKET\/KEY, gs:\/\/BUCKET\/NAME/,
        ],
        [{ ...base, path: 'http://x/y.csv' }, /^dataset\.path: http:\/\/x\/y\.csv has unknown scheme http:\/\//],
        [{ ...base, path: 's3://bucket' }, /^dataset\.path: s3:\/\/bucket needs a bucket and a key/],
        [{ name: 'cifar' as never }, /^dataset\.name: unknown dataset "cifar" \(built-in: mnist, iris/],
      ];
      for (const [spec, message] of cases) await refused(spec, message);
    });

    it('too large: the file before reading it, and the memory the decoded arrays need', async () => {
      const p = write('t.csv', good);
      const size = fs.statSync(path.join(dir, 't.csv')).size;
      await refused(
        { format: 'csv', path: p, label: 'label' },
        new RegExp(
          `^dataset\\.path: file://t\\.csv is ${size} bytes, larger than the dataset limit of 40 bytes; ` +
            'raise the limit with DURABLE_TRAIN_MAX_DATASET_BYTES=<bytes>',
        ),
        { maxBytes: 40 },
      );
      const saved = process.env.DURABLE_TRAIN_MAX_DATASET_BYTES;
      process.env.DURABLE_TRAIN_MAX_DATASET_BYTES = '40';
      try {
        await refused({ format: 'csv', path: p, label: 'label' }, /larger than the dataset limit of 40 bytes/);
      } finally {
        if (saved === undefined) delete process.env.DURABLE_TRAIN_MAX_DATASET_BYTES;
        else process.env.DURABLE_TRAIN_MAX_DATASET_BYTES = saved;
      }
      // 41 bytes of file, 2 float32 values a row at about 8 bytes each: the 4th row passes a 60-byte limit, and the
      // loader stops there instead of decoding the rest.
      assert.equal(size, 41);
      await refused(
        { format: 'csv', path: p, label: 'label' },
        /^dataset\.path: file:\/\/t\.csv decodes to at least 8 float32 values, about 64 bytes of worker memory, more than the dataset limit of 60 bytes/,
        { maxBytes: 60 },
      );
      assert.equal((await load({ format: 'csv', path: p, label: 'label' }, 1, 100)).train.n, 4);
    });

    it('the quick check reads only the start of a large file; the loader finds an error past it', async () => {
      const rows = ['a,b,label'];
      for (let i = 0, size = 0; size < 2 * VALIDATE_PREFIX_BYTES; i++) {
        rows.push(`${i},${i * 2},c${i % 5}`);
        size += rows[rows.length - 1].length + 1;
      }
      const okText = rows.join('\n') + '\n';
      write('big.csv', okText + '1,oops,c1\n');
      const spec: FileDataSpec = { format: 'csv', path: 'file://big.csv', label: 'label' };
      await validateDataFile(spec, { baseDir: dir });
      await assert.rejects(
        load(spec),
        new RegExp(`non-numeric value "oops" at line ${rows.length + 1} of file://big\\.csv`),
      );
      // Errors within the first rows of a large file are found by the quick check too.
      write('big2.csv', okText.replace('\n3,6,', '\n3,six,'));
      await assert.rejects(
        validateDataFile({ ...spec, path: 'file://big2.csv' }, { baseDir: dir }),
        /DatasetError: dataset\.features: column "b" has the non-numeric value "six" at line 5/,
      );
      await assert.rejects(
        validateDataFile({ ...spec, label: 'nope' }, { baseDir: dir }),
        /DatasetError: dataset\.label: no column "nope" in file:\/\/big\.csv \(columns: a, b, label\)/,
      );
      await validateDataFile(
        {
          format: 'jsonl',
          path: write('ok.jsonl', '{"a":1,"y":"p"}\n{"a":2,"y":"q"}\n'),
          label: 'y',
          testFraction: 0.5,
        },
        { baseDir: dir },
      );
    });
  });
});
