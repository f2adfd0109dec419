// durable-train as a dependency (real dev server): the package is packed with `npm pack`, installed from the tarball
// into a copy of examples/library (a project of its own), and its train.js runs a worker of its own with a model
// builder and a dataset loader registered in code, and starts a run from code.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunResult } from '../../workflows/progress';
import { startCluster, tmpDir, type TestCluster } from '../helpers/cluster';
import { PROJECT_ROOT } from '../../cli/tools';

describe('library: the packed package as a dependency, a registered model and dataset, a run started from code', function () {
  this.timeout(900_000);
  let cluster: TestCluster;
  let project: string;

  before(async function () {
    cluster = await startCluster();
    project = tmpDir('dt-lib-');
    const npm = (args: string[], cwd: string) =>
      execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
    // dist/ is built by the test command already: pack without running the build again.
    const tarball = npm(['pack', '--ignore-scripts', '--pack-destination', project, '--silent'], PROJECT_ROOT).trim();
    for (const f of ['package.json', 'train.js'])
      fs.copyFileSync(path.join(PROJECT_ROOT, 'examples', 'library', f), path.join(project, f));
    npm(['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(project, tarball)], project);
    assert.ok(fs.existsSync(path.join(project, 'node_modules', 'durable-train', 'dist', 'index.js')));
  });
  after(async function () {
    await cluster?.close();
    if (project) fs.rmSync(project, { recursive: true, force: true });
  });

  const example = (runId: string, queue: string) => {
    const r = spawnSync(process.execPath, ['train.js', runId], {
      cwd: project,
      env: { ...cluster.env, DURABLE_TRAIN_TASK_QUEUE: queue },
      encoding: 'utf8',
      timeout: 300_000,
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as RunResult;
  };

  it('trains through the installed package, learns, and gives the same weights twice', async function () {
    const a = example('moons-a', 'lib-a');
    assert.equal(a.status, 'completed');
    assert.ok(a.accuracy !== null && a.accuracy > 0.8, `it learned: ${a.accuracy}`);
    const b = example('moons-b', 'lib-b');
    assert.equal(b.weightsSha256, a.weightsSha256, 'same spec, same registered code: same weights');

    // The installed CLI exports the registered model without its code: the checkpoint recorded its topology.
    const out = path.join(project, 'exported');
    const r = spawnSync(
      process.execPath,
      [
        path.join(project, 'node_modules', 'durable-train', 'bin', 'durable-train.js'),
        'export',
        'moons-a',
        '--out',
        out,
        '--json',
      ],
      { cwd: project, env: cluster.env, encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      JSON.parse(r.stdout).weightsSha256,
      a.weightsSha256,
      'the exported weights are the run result weights',
    );
    assert.ok(fs.existsSync(path.join(out, 'model.json')) && fs.existsSync(path.join(out, 'weights.bin')));
  });
});
