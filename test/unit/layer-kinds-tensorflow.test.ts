// Every layer kind and every converted Keras fixture resumes exactly on the native TensorFlow backend too: the
// exact-resume tests of layer-kinds and keras-models run again in a process of their own with
// DURABLE_TRAIN_BACKEND=tensorflow (the suite itself runs on wasm, one backend per process).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { requireNative } from '../helpers/native';

const DIST = path.join(__dirname, '..', '..');

describe('layer kinds and Keras fixtures on the tensorflow backend', function () {
  this.timeout(900_000);
  before(function () {
    requireNative(this, 'the layer kinds on the tensorflow backend');
  });

  it('each trains, resumes from a snapshot to the uninterrupted weights and exports, on tensorflow', () => {
    const mocha = require.resolve('mocha/bin/mocha.js');
    const r = spawnSync(
      process.execPath,
      [
        mocha,
        '--no-config',
        '--require',
        path.join(DIST, 'test', 'helpers', 'suite-env.js'),
        '--timeout',
        '600000',
        '--exit',
        '--grep',
        'exact on resume|resumes from a snapshot',
        path.join(DIST, 'test', 'unit', 'layer-kinds.test.js'),
        path.join(DIST, 'test', 'unit', 'keras-models.test.js'),
      ],
      { encoding: 'utf8', env: { ...process.env, DURABLE_TRAIN_BACKEND: 'tensorflow' }, timeout: 840_000 },
    );
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.match(out, /tfjs backend tensorflow/, 'ran on tensorflow');
    // The layer lists (one test per group of kinds, named with the backend), the graph test and every fixture.
    const passed = (out.match(/✔|✓/g) ?? []).length;
    assert.ok(passed >= 10, `${passed} passing:\n${out}`);
    assert.match(out, /trains on tensorflow, exact on resume/);
    assert.doesNotMatch(out, /failing|pending/);
  });
});
