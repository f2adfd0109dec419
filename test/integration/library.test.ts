// durable-train as a library (real dev server): examples/library/train.js requires the package by its name, runs a
// worker of its own with a model builder and a dataset loader registered in code, and starts a run from code.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { RunResult } from '../../workflows/progress';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { PROJECT_ROOT } from '../../cli/tools';

describe('library: own worker, registered model and dataset, run started from code', function () {
  this.timeout(600_000);
  let cluster: TestCluster;
  before(async function () {
    cluster = await startCluster();
  });
  after(async function () {
    await cluster?.close();
  });

  const example = (runId: string, queue: string) => {
    const r = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'examples', 'library', 'train.js'), runId], {
      cwd: cluster.dir,
      env: { ...cluster.env, DURABLE_TRAIN_TASK_QUEUE: queue },
      encoding: 'utf8',
      timeout: 300_000,
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as RunResult;
  };

  it('trains through the package entry point, learns, and gives the same weights twice', async function () {
    const a = example('moons-a', 'lib-a');
    assert.equal(a.status, 'completed');
    assert.ok(a.accuracy !== null && a.accuracy > 0.8, `it learned: ${a.accuracy}`);
    const b = example('moons-b', 'lib-b');
    assert.equal(b.weightsSha256, a.weightsSha256, 'same spec, same registered code: same weights');
  });
});
