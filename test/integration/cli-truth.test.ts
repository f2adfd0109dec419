// The CLI tells the truth about failures, against a real dev server and worker: bad run ids are refused by
// `start` and every id-taking command before anything happens; `health` reports failing checkpoint commits;
// status, health and lineage show a failed run as failed; `checkpoints list --verify` fails on damage;
// `set-lr` refuses a rate that is zero in float32; errors are one line with a meaningful exit code.
// Most commands run in this process (cliIn: the CLI's runCli, whose result is the process's exit code); each test keeps
// one spawned `node dist/client.js` for the exit code and the whole stderr of a real process.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import {
  cli,
  cliAsync,
  DIST,
  tmpDir,
  waitFor,
  writeSpec,
  type CliResult,
  type TestCluster,
  type WorkerProcess,
} from '../helpers/cluster';
import { cliIn } from '../helpers/cli-in-process';
import { runningChunk, smallSpec, useCluster } from '../helpers/fixtures';

// 250 steps in chunks of 25.
const spec = smallSpec({
  dataset: { name: 'mnist', trainLimit: 4000, testLimit: 200, validationFraction: 0 },
  epochs: 1,
  batchSize: 16,
  chunkSteps: 25,
  seed: 5,
  optimizer: { name: 'adam', learningRate: 0.001 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 3 },
});

/**
 * A loopback port bound but not listening (a Python socket: node binds TCP only to listen), held until `release`:
 * a connection to it is refused, and nothing else can bind it meanwhile, unlike a port `freePort` found free a moment ago.
 */
async function holdPort(): Promise<{ port: number; release(): void }> {
  const proc = spawn('python3', ['-c', HOLD_PORT_PY], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`python3 holding a port exited (${code})`)));
    proc.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  return { port, release: () => proc.kill() };
}
const HOLD_PORT_PY =
  "import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',0))\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()";

/** One error line on stderr, no stack frames: what a user should see for an expected error. */
function oneLine(r: CliResult): void {
  const lines = r.stderr.trim().split('\n');
  const errors = lines.filter((l) => l.startsWith('durable-train: '));
  assert.equal(errors.length, 1, `expected a one-line error, got:\n${r.stderr}`);
  assert.equal(lines[lines.length - 1], errors[0], `the error is the last line:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, r.stderr);
}

describe('the CLI tells the truth about ids, failures and errors (real dev server, real worker)', function () {
  this.timeout(600_000);
  // One worker for the whole block (started in before, killed in after), as every test but the crash needs one.
  const fx = useCluster();
  let cluster: TestCluster;
  let worker: WorkerProcess;
  let specFile: string;
  const frozen: string[] = [];

  before(async function () {
    cluster = fx.cluster;
    worker = await fx.worker();
    specFile = writeSpec(cluster.dir, 'spec.json', spec);
  });
  after(function () {
    for (const dir of frozen) spawnSync('chattr', ['-i', dir]);
  });

  it('start refuses unsafe run ids and storage URLs with exit 2 and one line, before anything is started or written', async function () {
    const bad = ['../x', '.', '..', '/abs', 'a/b', 'a\nb', 'x'.repeat(1000), '', 'a:b', '.hidden'];
    // The process itself: exit 2 and one line on its whole stderr.
    const spawned = cli(cluster, ['start', '--spec', specFile, '--run-id', '../x']);
    assert.equal(spawned.code, 2, `spawned start --run-id ../x: ${spawned.stdout}${spawned.stderr}`);
    oneLine(spawned);
    assert.match(spawned.stderr, /invalid run id "\.\.\/x"/, spawned.stderr);
    for (const id of bad) {
      const r = await cliIn(cluster, ['start', '--spec', specFile, '--run-id', id]);
      assert.equal(r.code, 2, `start --run-id ${JSON.stringify(id)}: ${r.stdout}${r.stderr}`);
      oneLine(r);
      assert.match(r.stderr, /invalid run id /, r.stderr);
    }
    assert.match(
      (await cliIn(cluster, ['start', '--spec', specFile, '--run-id', ''])).stderr,
      /invalid run id "": it is empty/,
    );
    assert.match(
      (await cliIn(cluster, ['start', '--spec', specFile, '--run-id', 'a\nb'])).stderr,
      /invalid run id "a\\nb": it contains a control character/,
    );
    for (const storage of ['s3:///x', 'file://a\nb', 'ftp://host/x']) {
      const file = writeSpec(cluster.dir, 'bad-storage.json', { ...spec, checkpoint: { storage } });
      const r = await cliIn(cluster, ['start', '--spec', file, '--run-id', 'bad-storage']);
      assert.equal(r.code, 2, `storage ${JSON.stringify(storage)}: ${r.stdout}${r.stderr}`);
      oneLine(r);
      assert.match(r.stderr, /checkpoint\.storage/);
    }
    const runs = [];
    for await (const w of cluster.client.workflow.list()) runs.push(w.workflowId);
    assert.deepEqual(runs, [], 'no run was started');
    assert.equal(fs.existsSync(path.join(cluster.dir, '.data', 'checkpoints')), false, 'nothing was written');
    assert.equal(fs.existsSync(path.join(cluster.dir, 'x')), false);
  });

  it('every id-taking command refuses a bad id with exit 2, and a missing run with exit 3, in one line', async function () {
    const commands = [
      ['status'],
      ['watch'],
      ['pause'],
      ['resume'],
      ['stop'],
      ['cancel'],
      ['lineage'],
      ['health'],
      ['checkpoints', 'list'],
      ['checkpoints', 'verify'],
      ['report'],
    ];
    for (const [i, c] of commands.entries()) {
      for (const id of i % 3 === 0 ? ['../x', ''] : ['../x']) {
        const r = await cliIn(cluster, [...c, id]);
        assert.equal(r.code, 2, `${c.join(' ')} ${JSON.stringify(id)}: ${r.stdout}${r.stderr}`);
        oneLine(r);
        assert.match(r.stderr, /invalid run id/);
      }
    }
    const usage = await cliIn(cluster, ['status']);
    assert.equal(usage.code, 2, usage.stderr);
    oneLine(usage);
    assert.match(usage.stderr, /status: missing RUN_ID/);
    const setLr = await cliIn(cluster, ['set-lr', '../x', '0.1']);
    assert.equal(setLr.code, 2, setLr.stderr);
    const exp = await cliIn(cluster, ['export', 'nope:../y', '--out', path.join(cluster.dir, 'exp')]);
    assert.equal(exp.code, 2, exp.stderr);
    assert.match(exp.stderr, /invalid checkpoint id "\.\.\/y"/);
    const show = await cliIn(cluster, ['checkpoints', 'show', 'nope', '../y']);
    assert.equal(show.code, 2, show.stderr);

    for (const c of [...commands.filter((c) => c[0] !== 'report'), ['set-lr', 'nope', '0.1']]) {
      const args = c[0] === 'set-lr' ? c : [...c, 'nope'];
      const r = await cliIn(cluster, args);
      assert.equal(r.code, 3, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      if (c[0] !== 'lineage') oneLine(r);
    }
    // The process itself: a missing run is exit 3 and one line on its whole stderr.
    const spawned = cli(cluster, ['status', 'nope']);
    assert.equal(spawned.code, 3, `spawned status nope: ${spawned.stdout}${spawned.stderr}`);
    oneLine(spawned);
  });

  it('a stopped server is one line and exit 6, not a stack trace', async function () {
    // A port held by this test where nothing listens: connections to it are refused, and no other process can take it.
    const held = await holdPort();
    const port = held.port;
    try {
      const env = { TEMPORAL_ADDRESS: `127.0.0.1:${port}` };
      // The first as a process (its exit code and whole stderr), meanwhile the others in process (each waits out the
      // connect timeout).
      const spawned = cliAsync({ ...cluster, env: { ...cluster.env, ...env } }, ['status', 'x']);
      const results: Array<[string[], CliResult]> = [];
      for (const args of [
        ['runs', 'list'],
        ['health', 'x'],
      ])
        results.push([args, await cliIn(cluster, args, { env })]);
      results.unshift([['status', 'x'], await spawned]);
      for (const [args, r] of results) {
        assert.equal(r.code, 6, `${args.join(' ')}: ${r.stderr}`);
        oneLine(r);
        assert.match(r.stderr, /cannot reach Temporal at 127\.0\.0\.1:\d+/);
      }
    } finally {
      held.release();
    }
  });

  it('a failed run is shown as failed by status, health and lineage; start --wait says why, exit 5', async function () {
    fs.writeFileSync(path.join(cluster.dir, 'blocked'), 'a file where the checkpoint directory should be');
    const failing = writeSpec(cluster.dir, 'failing.json', {
      ...spec,
      checkpoint: { storage: 'file://blocked/checkpoints' },
    });
    // As a process: exit 5 and one line on its whole stderr.
    const w = cli(cluster, ['start', '--spec', failing, '--run-id', 'doomed', '--wait']);
    assert.equal(w.code, 5, w.stdout + w.stderr);
    oneLine(w);
    assert.match(w.stderr, /not writable/);

    const status = await cliIn(cluster, ['status', 'doomed', '--json']);
    assert.equal(status.code, 0, status.stderr);
    const s = status.json<{ status: string; workflowStatus: string; failure: string }>();
    assert.equal(s.workflowStatus, 'FAILED');
    assert.equal(s.status, 'failed', JSON.stringify(s));
    assert.match(s.failure, /not writable/);
    assert.match((await cliIn(cluster, ['status', 'doomed'])).stdout, /^run doomed: failed \(workflow FAILED\)/);

    const health = await cliIn(cluster, ['health', 'doomed', '--json']);
    assert.equal(health.code, 1, health.stderr);
    assert.equal(health.json<{ status: string }>().status, 'failed');

    const lineage = await cliIn(cluster, ['lineage', 'doomed', '--json']);
    assert.equal(lineage.code, 0, lineage.stderr);
    assert.equal(lineage.json<{ status: string }>().status, 'failed');
    const runs = (await cliIn(cluster, ['runs', 'list', '--json'])).json<Array<{ runId: string; status: string }>>();
    assert.equal(runs.find((r) => r.runId === 'doomed')?.status, 'failed');
  });

  it('health reports failing checkpoint commits while checkpoints are still fresh, and recent ones after', async function () {
    const started = await cliIn(cluster, ['start', '--spec', specFile, '--run-id', 'commits']);
    assert.equal(started.code, 0, started.stderr);
    const handle = cluster.client.workflow.getHandle('commits');
    await waitFor(
      'a checkpoint',
      async () => ((await handle.query(progressQuery)).lastCheckpoint?.step ?? 0) > 0,
      120_000,
      100,
    );
    const ok = await cliIn(cluster, ['health', 'commits', '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);

    // No new blob can be created (root ignores permissions, not the immutable flag): every commit now fails,
    // while the existing checkpoints stay readable and young.
    const blobs = path.join(cluster.dir, '.data', 'checkpoints', 'commits', 'blobs');
    const freeze = spawnSync('chattr', ['+i', blobs], { encoding: 'utf8' });
    assert.equal(freeze.status, 0, `chattr +i: ${freeze.stderr}`);
    frozen.push(blobs);
    await waitFor(
      'a retried chunk',
      async () => ((await handle.describe()).raw.pendingActivities?.[0]?.attempt ?? 1) >= 3,
      120_000,
      200,
    );
    const bad = await cliIn(cluster, ['health', 'commits', '--json']);
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    const report = bad.json<{
      ok: boolean;
      alerts: string[];
      newestCheckpoint: { ageSeconds: number };
      recentFailures: { count: number; last: { message: string } };
    }>();
    assert.equal(report.ok, false);
    assert.ok(report.newestCheckpoint.ageSeconds < 600, 'the newest checkpoint is not stale: staleness is not why');
    assert.ok(report.recentFailures.count >= 2, JSON.stringify(report));
    assert.match(report.recentFailures.last.message, /EPERM|operation not permitted/, JSON.stringify(report));
    assert.ok(
      report.alerts.some((a) =>
        /^failing: chunk attempt \d+ after \d+ failed attempt\(s\).*(EPERM|not permitted)/.test(a),
      ),
      JSON.stringify(report.alerts),
    );

    spawnSync('chattr', ['-i', blobs]);
    frozen.pop();
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    // Finished, but commits failed a moment ago: still worth an alert, as the Prometheus rule's window does.
    const after = await cliIn(cluster, ['health', 'commits', '--json']);
    assert.equal(after.code, 1, after.stdout);
    const afterReport = after.json<{ alerts: string[]; recentFailures: { last: { at: string } | null } }>();
    assert.ok(
      afterReport.alerts.some((a) => /failed chunk attempt\(s\) in the last 600s/.test(a)),
      after.stdout,
    );
    // Once the last failure is over a second old, a 1 s window holds none: ok again.
    const lastFailure = Date.parse(afterReport.recentFailures.last?.at ?? '');
    assert.ok(Number.isFinite(lastFailure), after.stdout);
    await waitFor('the last failure to be over 1 s old', async () => Date.now() - lastFailure > 1200, 30_000, 50);
    const later = await cliIn(cluster, ['health', 'commits', '--max-age', '1', '--json']);
    assert.equal(later.code, 0, later.stdout);
  });

  it('checkpoints list --verify exits 1 when a row is DAMAGED', async function () {
    // A finished run of its own (24 steps, chunks of 5), so this test passes alone.
    const made = writeSpec(cluster.dir, 'verify.json', smallSpec({ seed: 5 }));
    const r = await cliIn(cluster, ['start', '--spec', made, '--run-id', 'verify', '--wait']);
    assert.equal(r.code, 0, r.stderr + worker.output());
    const list = await cliIn(cluster, ['checkpoints', 'list', 'verify', '--verify', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const rows = list.json<Array<{ id: string; valid: boolean }>>();
    assert.ok(rows.length > 0 && rows.every((r) => r.valid));
    const dir = path.join(cluster.dir, '.data', 'checkpoints', 'verify');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifests', `${rows[0].id}.json`), 'utf8'));
    const blob = manifest.blobs.find((b: { name: string }) => b.name.startsWith('model/'));
    fs.writeFileSync(path.join(dir, 'blobs', blob.sha256), Buffer.alloc(blob.size));
    const damaged = await cliIn(cluster, ['checkpoints', 'list', 'verify', '--verify']);
    assert.equal(damaged.code, 1, damaged.stdout + damaged.stderr);
    assert.match(damaged.stdout, new RegExp(`${rows[0].id} .*DAMAGED`));
  });

  it('set-lr refuses a rate that is zero in float32, before sending anything', async function () {
    const r0 = await cliIn(cluster, ['start', '--spec', specFile, '--run-id', 'lr']);
    assert.equal(r0.code, 0, r0.stderr);
    const handle = cluster.client.workflow.getHandle('lr');
    await waitFor('lr running', async () => ((await handle.query(progressQuery)).step ?? 0) > 0, 120_000, 100);
    // Paused, so it is still there (not finished) when the valid value is sent at the end.
    assert.equal((await cliIn(cluster, ['pause', 'lr'])).code, 0);
    await waitFor('lr paused', async () => (await handle.query(progressQuery)).status === 'paused', 120_000, 100);
    // Each refused by the CLI's own check, before anything is sent: the message is the CLI's (the workflow's
    // validator words its refusal differently, "set-lr rejected: learning rate must be ..."), and nothing reaches the
    // workflow's history.
    for (const [value, why] of [
      ['1e-320', /^durable-train: set-lr: VALUE 1e-320 is 0 in float32/m],
      ['0', /^durable-train: set-lr: VALUE must be > 0, got 0$/m],
      ['-1', /^durable-train: set-lr: VALUE must be > 0, got -1$/m],
      ['11', /^durable-train: set-lr: VALUE must be <= 10, got 11$/m],
      ['abc', /^durable-train: set-lr: VALUE must be a number, got "abc"$/m],
    ] as const) {
      const r = await cliIn(cluster, ['set-lr', 'lr', value]);
      assert.equal(r.code, 2, `set-lr ${value}: ${r.stdout}${r.stderr}`);
      oneLine(r);
      assert.match(r.stderr, why);
    }
    const history = await handle.fetchHistory();
    assert.ok(
      !(history.events ?? []).some((e) => e.workflowExecutionUpdateAcceptedEventAttributes),
      'no update reached the workflow',
    );
    const ok = await cliIn(cluster, ['set-lr', 'lr', '1e-40', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.json<{ learningRate: number }>().learningRate, 1e-40);
    await handle.terminate('test done');
  });

  it('health stays ok after a worker crash the run recovered from (a timeout is not a failed commit)', async function () {
    // The block's worker leaves the queue; a paced worker of this test (every step 25 ms longer, same numbers) trains
    // the run, so the kill after a heartbeat observed on it lands inside its chunk of 200 steps (over 5 s).
    await worker.kill('SIGKILL');
    const paced = await fx.worker({ paced: { stepMs: 25 } });
    const file = writeSpec(cluster.dir, 'crash.json', { ...spec, chunkSteps: 200 });
    assert.equal((await cliIn(cluster, ['start', '--spec', file, '--run-id', 'crash'])).code, 0);
    const handle = cluster.client.workflow.getHandle('crash');
    await waitFor(
      'a chunk in flight on the paced worker, past step 25',
      async () => {
        const c = await runningChunk(handle);
        return c && c.step !== null && c.step >= 25 && c.identity.startsWith(`${paced.proc.pid}@`);
      },
      120_000,
      50,
    );
    // Kill the worker that runs the chunk; a worker of this test (killed after it) takes over.
    await paced.kill('SIGKILL');
    await fx.worker();
    const result = (await handle.result()) as RunResult;
    assert.equal(result.status, 'completed');
    const history = await handle.fetchHistory();
    assert.ok(
      (history.events ?? []).some((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1),
      'a chunk was retried after the crash',
    );
    const h = await cliIn(cluster, ['health', 'crash', '--json']);
    assert.equal(h.code, 0, h.stdout + h.stderr);
    assert.equal(h.json<{ recentFailures: { count: number } }>().recentFailures.count, 0);
  });

  it('the dev-server wrapper exits non-zero, with a message, when its server is killed', async function () {
    const dir = tmpDir();
    const port = await freePort();
    const proc = spawn(
      process.execPath,
      [
        path.join(DIST, 'client.js'),
        'dev-server',
        '--headless',
        '--port',
        String(port),
        '--db',
        path.join(dir, 't.sqlite'),
        '--json',
      ],
      { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const { pid } = await waitFor(
      'the dev server',
      // The server's own output shares stdout: take our JSON line.
      async () => {
        const line = stdout.split('\n').find((l) => l.startsWith('{"address"'));
        return line ? (JSON.parse(line) as { pid: number }) : null;
      },
      120_000,
      100,
    );
    process.kill(pid, 'SIGKILL');
    const code = await exited;
    assert.notEqual(code, 0, `wrapper exit code ${code}; stderr: ${stderr}`);
    assert.match(stderr, /dev server \(pid \d+\) exited unexpectedly \(killed by SIGKILL\)/);
  });
});
