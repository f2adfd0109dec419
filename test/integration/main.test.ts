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
import { sharedWorkflowBundle } from '../helpers/workflow-bundle';

const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 16000, testLimit: 500, validationFraction: 0 },
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

function main(
  dir: string,
  args: string[],
  onStart?: (proc: ReturnType<typeof spawn>) => void,
  unset: string[] = [],
): Promise<MainRun> {
  const env = { ...process.env };
  delete env.TEMPORAL_ADDRESS; // the embedded dev server
  for (const k of unset) delete env[k];
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

/** The pids of every live process descending from `pid` (Linux: each process's parent from /proc/PID/stat). */
function descendantsOf(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited while we read
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

/** Whether a process with this pid exists (a zombie not yet reaped counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const cmdline = (pid: number) => {
  try {
    return `${pid} ${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')}`;
  } catch {
    return `${pid} (gone)`;
  }
};

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
  unset?: string[],
): Promise<MainRun & { port: number; uiPort: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const uiPort = await freePort();
    const r = await main(dir, [...args, '--port', String(port), '--ui-port', String(uiPort)], onStart, unset);
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
  // main's worker takes this mocha run's workflow bundle (through the environment) instead of bundling its own.
  before(async function () {
    await sharedWorkflowBundle();
  });

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
    // What `main` started (the dev server and anything under it), taken just before Ctrl-C.
    let started: number[] = [];
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
          started = descendantsOf(proc.pid!);
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
    // Nothing of ours is left running: every process main had started has exited, and the dev server's own ports are
    // free again.
    assert.ok(started.length >= 1, 'main had started its dev server');
    const left = started.filter(alive);
    assert.deepEqual(left, [], `still running after main exited: ${left.map(cmdline).join('; ')}`);
    assert.ok(await canBind(first.port), `the dev server's port ${first.port} is still taken`);
    assert.ok(await canBind(first.uiPort), `the Web UI port ${first.uiPort} is still taken`);

    // Resumed with no backend named (as `npm start` does, where the native build may now exist and 'auto' would pick
    // it): the run keeps the backend its checkpoints were written on.
    const backend = newest.backend.name as string;
    const second = await mainOnFreePorts(dir, [...common, '--run-id', 'run'], undefined, ['DURABLE_TRAIN_BACKEND']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /resuming run run/);
    assert.match(
      second.stderr,
      new RegExp(`run run has checkpoints on the ${backend} backend: its worker trains on ${backend}`),
    );
    const result = resultOf(second);
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 2000);
    assert.equal(result.weightsSha256, refResult.weightsSha256);
  });
});
