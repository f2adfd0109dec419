// Dataset and model files are read only under the worker's data roots (DURABLE_TRAIN_DATA_ROOTS, else its directory and
// the run's checkpoint store), judged after symlinks are resolved; the refusal never quotes the file.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { clearDataCache, loadData } from '../../training/data';
import { dataRoots } from '../../training/data/roots';
import { loadTfjsModel } from '../../training/tfjs-model';

describe('data roots confine where datasets and models are read', function () {
  let dir: string;
  let outside: string;
  let saved: string | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-roots-'));
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-outside-'));
    clearDataCache();
    saved = process.env.DURABLE_TRAIN_DATA_ROOTS;
    process.env.DURABLE_TRAIN_DATA_ROOTS = dir;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.DURABLE_TRAIN_DATA_ROOTS;
    else process.env.DURABLE_TRAIN_DATA_ROOTS = saved;
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  it('a symlink inside the root to a file outside it is refused, naming the paths and not the contents', async () => {
    fs.writeFileSync(path.join(outside, 'secret.csv'), 'root:x:0:0:root:/root:/bin/bash,label\n1,x\n');
    fs.symlinkSync(path.join(outside, 'secret.csv'), path.join(dir, 'link.csv'));
    await assert.rejects(
      loadData({ format: 'csv', path: 'file://link.csv', label: 'label' }, { seed: 1, baseDir: dir }),
      (err: Error) => {
        assert.equal(err.name, 'DatasetError');
        assert.match(
          err.message,
          /^dataset\.path: file:\/\/link\.csv resolves to .*secret\.csv, outside the directories/,
        );
        assert.doesNotMatch(err.message, /root:x/);
        return true;
      },
    );
    await assert.rejects(
      loadData({ format: 'csv', path: `file://${outside}/secret.csv`, label: 'label' }, { seed: 1, baseDir: dir }),
      /outside the directories this worker reads data and models from/,
    );
  });

  it('a file inside the root reads; a model.json outside it is refused', async () => {
    fs.writeFileSync(path.join(dir, 'ok.csv'), 'a,label\n1,x\n2,y\n3,x\n4,y\n');
    const data = await loadData({ format: 'csv', path: 'file://ok.csv', label: 'label' }, { seed: 1, baseDir: dir });
    assert.equal(data.train.n + data.test.n, 4);
    fs.writeFileSync(path.join(outside, 'model.json'), '{}');
    await assert.rejects(
      loadTfjsModel(`file://${outside}/model.json`, dir),
      /^ConfigError|model\.tfjs: .*outside the directories/,
    );
  });

  it('unset, the roots are the working directory and the given stores', () => {
    assert.deepEqual(dataRoots(['/srv/work', '/srv/ck'], {}), ['/srv/work', '/srv/ck']);
    assert.deepEqual(dataRoots(['/srv/work'], { DURABLE_TRAIN_DATA_ROOTS: `/data${path.delimiter}/models` }), [
      '/data',
      '/models',
    ]);
  });
});
