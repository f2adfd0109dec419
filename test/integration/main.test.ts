// The main job (`npm start` = `durable-train main`): embedded dev server + worker + run; Ctrl-C loses nothing
// and running it again resumes the same run to the same weights as an uninterrupted run.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../../cli/dev-server';
import type { RunResult } from '../../workflows/progress';
import { DIST, tmpDir, waitFor, writeSpec } from '../helpers/cluster';

const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 16000, testLimit: 500 },
  epochs: 1,
  batchSize: 16,
  chunkSteps: 200,
  seed: 3,
  optimizer: { name: 'adam', learningRate: 0.001 },
  checkpoint: { storage: 'file://.data/checkpoints' },
};

interface MainRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function main(dir: string, args: string[], onStart?: (proc: ReturnType<typeof spawn>) => void): Promise<MainRun> {
  const env = { ...process.env };
  delete env.TEMPORAL_ADDRESS; // the embedded dev server
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [path.join(DIST, 'client.js'), 'main', '--json', ...args], { cwd: dir, env });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('exit', (code) => resolve({ code, stdout, stderr }));
    onStart?.(proc);
  });
}

const resultOf = (r: MainRun): RunResult => {
  const lines = r.stdout.trim().split('\n');
  return (JSON.parse(lines[lines.length - 1]) as { result: RunResult }).result;
};

describe('the main job (durable-train main, what npm start runs)', function () {
  this.timeout(600_000);

  it('Ctrl-C stops everything cleanly without losing the run; running it again resumes to the uninterrupted weights', async function () {
    const dir = tmpDir();
    const specFile = writeSpec(dir, 'spec.json', spec);
    const port = await freePort();
    const uiPort = await freePort();
    const db = path.join(dir, 'temporal.sqlite');
    const common = ['--spec', specFile, '--port', String(port), '--ui-port', String(uiPort), '--db', db];

    const ref = await main(dir, [...common, '--run-id', 'ref']);
    assert.equal(ref.code, 0, ref.stderr);
    const refResult = resultOf(ref);
    assert.equal(refResult.status, 'completed');
    assert.match(ref.stderr, new RegExp(`Web UI: http://127\\.0\\.0\\.1:${uiPort}/namespaces/default/workflows/ref`));

    const manifests = path.join(dir, '.data', 'checkpoints', 'run', 'manifests');
    const first = await main(dir, [...common, '--run-id', 'run'], (proc) => {
      void waitFor(
        'the first checkpoint',
        async () => fs.existsSync(manifests) && fs.readdirSync(manifests).length > 0,
        300_000,
        50,
      ).then(() => proc.kill('SIGINT'));
    });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /run run is saved; run `npm start` again to resume it/);
    const saved = fs.readdirSync(manifests).map((f) => JSON.parse(fs.readFileSync(path.join(manifests, f), 'utf8')));
    const newest = saved.sort((a, b) => b.step - a.step)[0];
    assert.ok(newest.step < 1000, `stopped before the end (step ${newest.step})`);
    // Nothing of ours is left running: the port is free again.
    const again = await freePort();
    assert.ok(again > 0);

    const second = await main(dir, [...common, '--run-id', 'run']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /resuming run run/);
    const result = resultOf(second);
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 1000);
    assert.equal(result.weightsSha256, refResult.weightsSha256);
  });
});
