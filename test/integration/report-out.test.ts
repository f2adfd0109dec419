// `report --out/--png` against a real dev server, as a user runs the CLI: an existing file is refused with exit 2
// and kept unless --force, like `export`. The run is started without a worker: the report needs only the server.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateSpec } from '../../spec';
import { cli, startCluster, type TestCluster } from '../helpers/cluster';

const spec = validateSpec({
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 600, testLimit: 200, validationFraction: 0 },
  epochs: 1,
  batchSize: 50,
  chunkSteps: 5,
  seed: 3,
  optimizer: { name: 'adam', learningRate: 0.003 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 3 },
});

describe('report refuses to overwrite files without --force (real Temporal dev server, CLI process)', function () {
  this.timeout(180_000);
  let cluster: TestCluster;

  before(async function () {
    cluster = await startCluster();
    await cluster.client.workflow.start('trainingWorkflow', {
      workflowId: 'rep-out',
      taskQueue: cluster.taskQueue,
      args: [{ spec }],
      memo: { spec },
    });
  });
  after(async function () {
    await cluster?.close();
  });

  it('keeps an existing --out or --png file (exit 2) and replaces it with --force', function () {
    const html = path.join(cluster.dir, 'r.html');
    const png = path.join(cluster.dir, 'r.png');
    fs.writeFileSync(html, 'my notes');
    let r = cli(cluster, ['report', 'rep-out', '--out', html]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--out .*r\.html exists; pass --force to overwrite it/);
    assert.equal(fs.readFileSync(html, 'utf8'), 'my notes');

    fs.writeFileSync(png, 'my picture');
    r = cli(cluster, ['report', 'rep-out', '--out', html, '--png', png, '--force', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json<{ runId: string }>().runId, 'rep-out');
    assert.match(fs.readFileSync(html, 'utf8'), /^<!doctype html>[\s\S]*Run rep-out/);
    assert.deepEqual([...fs.readFileSync(png).subarray(1, 4)], [...Buffer.from('PNG')]);

    // A new page next to an existing picture: refused before anything is written.
    const other = path.join(cluster.dir, 'other.html');
    r = cli(cluster, ['report', 'rep-out', '--out', other, '--png', png]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--png .*r\.png exists; pass --force/);
    assert.equal(fs.existsSync(other), false);
  });
});
