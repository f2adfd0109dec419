// The main job (`npm start` = `durable-train main`): embedded dev server + worker + run; Ctrl-C loses nothing
// and running it again resumes the same run to the same weights as an uninterrupted run.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { freePort } from '../../cli/dev-server';
import type { RunResult } from '../../workflows/progress';
import { DIST, tmpDir, waitFor, writeSpec } from '../helpers/cluster';

const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 16000, testLimit: 500 },
  epochs: 2,
  batchSize: 16,
  // Long chunks: Ctrl-C below lands inside the second one (steps 1000-2000), not between chunks.
  chunkSteps: 1000,
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

/** True when nothing holds `port` on loopback: we can bind it ourselves. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * `main` takes its dev server ports on the command line, so they are chosen before the server binds them and another
 * process may take one in between: then `main` fails saying the port is in use, and we try again on new ports.
 */
async function mainOnFreePorts(
  dir: string,
  args: string[],
  onStart?: (proc: ReturnType<typeof spawn>) => void,
): Promise<MainRun & { port: number; uiPort: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const uiPort = await freePort();
    const r = await main(dir, [...args, '--port', String(port), '--ui-port', String(uiPort)], onStart);
    const raced = r.code !== 0 && /already in use|address already in use|exited before it was ready/i.test(r.stderr);
    if (!raced || attempt >= 3) return { ...r, port, uiPort };
  }
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
    const db = path.join(dir, 'temporal.sqlite');
    const common = ['--spec', specFile, '--db', db];

    const ref = await mainOnFreePorts(dir, [...common, '--run-id', 'ref']);
    assert.equal(ref.code, 0, ref.stderr);
    const refResult = resultOf(ref);
    assert.equal(refResult.status, 'completed');
    assert.match(
      ref.stderr,
      new RegExp(`Web UI: http://127\\.0\\.0\\.1:${ref.uiPort}/namespaces/default/workflows/ref`),
    );

    // Ctrl-C once the run is past its first checkpoint and a later step was reported: the step seen then is work the
    // shutdown must not lose.
    const manifests = path.join(dir, '.data', 'checkpoints', 'run', 'manifests');
    let seenAtSigint = -1;
    const first = await mainOnFreePorts(dir, [...common, '--run-id', 'run'], (proc) => {
      let seen = 0;
      let buf = '';
      proc.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const line of lines) {
          try {
            const v = JSON.parse(line) as { heartbeat?: { step?: number } | null; progress?: { step?: number } | null };
            seen = Math.max(seen, v.heartbeat?.step ?? 0, v.progress?.step ?? 0);
          } catch {
            // not a progress line
          }
        }
      });
      void waitFor(
        'the first checkpoint and a step after it',
        async () =>
          proc.exitCode !== null || (fs.existsSync(manifests) && fs.readdirSync(manifests).length > 0 && seen > 1000),
        300_000,
        20,
      ).then(
        () => {
          if (proc.exitCode !== null) return; // ended on its own (a failed attempt, or too fast): asserted below
          seenAtSigint = seen;
          proc.kill('SIGINT');
        },
        () => undefined,
      );
    });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /run run is saved; run `npm start` again to resume it/);
    assert.ok(seenAtSigint > 1000, `SIGINT was sent after step ${seenAtSigint}`);
    const saved = fs.readdirSync(manifests).map((f) => JSON.parse(fs.readFileSync(path.join(manifests, f), 'utf8')));
    const newest = saved.sort((a, b) => b.step - a.step)[0];
    assert.ok(newest.step < 2000, `stopped before the end (step ${newest.step})`);
    // Nothing is lost: the checkpoint written on the way out is at or after the last step reported before Ctrl-C.
    assert.ok(newest.step >= seenAtSigint, `newest checkpoint at step ${newest.step}, step ${seenAtSigint} was seen`);
    assert.equal(newest.reason, 'worker-shutdown', `the running chunk committed on shutdown: ${JSON.stringify(saved)}`);
    // Nothing of ours is left running: the dev server's own ports are free again.
    assert.ok(await canBind(first.port), `the dev server's port ${first.port} is still taken`);
    assert.ok(await canBind(first.uiPort), `the Web UI port ${first.uiPort} is still taken`);

    const second = await mainOnFreePorts(dir, [...common, '--run-id', 'run']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /resuming run run/);
    const result = resultOf(second);
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 2000);
    assert.equal(result.weightsSha256, refResult.weightsSha256);
  });
});
