// Large dataset files are decoded on a worker thread (training/data/decode-thread.ts) so the event loop keeps
// heartbeating: the result is the one the calling thread gives, bit for bit, errors keep their field, and the loop
// turns while the thread works.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { clearDataCache, DatasetError, loadData, type FileDataSpec } from '../../training/data';

describe('dataset decoding on a worker thread', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-train-decode-thread-'));
    // About 2 MiB: 40,000 rows of 6 features and a class.
    const lines = ['f0,f1,f2,f3,f4,f5,label'];
    for (let i = 0; i < 40_000; i++) {
      const f = Array.from({ length: 6 }, (_, j) => (((i * 7919 + j * 104729) % 100_003) / 1000).toFixed(3));
      lines.push(`${f.join(',')},${['a', 'b', 'c'][i % 3]}`);
    }
    fs.writeFileSync(path.join(dir, 'big.csv'), lines.join('\n') + '\n');
    fs.writeFileSync(path.join(dir, 'bad.csv'), lines.slice(0, 30_000).join('\n') + '\n1,2,3,x,5,6,a\n');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => clearDataCache());

  const spec: FileDataSpec = { format: 'csv', path: 'file://big.csv', label: 'label', task: 'classification' };

  it('gives the same data as decoding on the calling thread, while the event loop keeps turning', async () => {
    const inline = await loadData(spec, { seed: 3, baseDir: dir, decodeOnThreadFrom: Infinity });
    clearDataCache();
    let turns = 0;
    const tick = setInterval(() => turns++, 1);
    const threaded = await loadData(spec, { seed: 3, baseDir: dir, decodeOnThreadFrom: 1 }).finally(() =>
      clearInterval(tick),
    );
    assert.ok(turns > 0, 'the event loop turned while the thread decoded');
    assert.equal(threaded.fingerprint, inline.fingerprint);
    assert.deepEqual(threaded.classes, inline.classes);
    assert.deepEqual(threaded.normalization, inline.normalization);
    for (const k of ['train', 'test'] as const) {
      assert.equal(threaded[k].n, inline[k].n);
      assert.ok(Buffer.from(threaded[k].x.buffer).equals(Buffer.from(inline[k].x.buffer)), `${k}.x`);
      assert.ok(Buffer.from(threaded[k].y.buffer).equals(Buffer.from(inline[k].y.buffer)), `${k}.y`);
    }
    assert.equal(threaded.train.n, 32_000);
  });

  it('a bad row found on the thread is the same DatasetError, naming the field and the line', async () => {
    const bad = { ...spec, path: 'file://bad.csv' };
    await assert.rejects(loadData(bad, { seed: 3, baseDir: dir, decodeOnThreadFrom: 1 }), (e: unknown) => {
      assert.ok(e instanceof DatasetError, String(e));
      assert.equal(e.field, 'dataset.features');
      assert.match(
        e.message,
        /^dataset\.features: column "f3" has the non-numeric value "x" at line 30001 of file:\/\/bad\.csv;/,
      );
      return true;
    });
  });
});
