// Real components for integration tests: the Temporal dev server (own SQLite file, free ports),
// worker processes that can be SIGKILLed, and the CLI as a user runs it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { freePort, startDevServer, type DevServer } from '../../cli/dev-server';
import { PROJECT_ROOT } from '../../cli/tools';
import { sharedWorkflowBundle } from './workflow-bundle';

export const DIST = path.join(PROJECT_ROOT, 'dist');

export function tmpDir(prefix = 'dt-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestCluster {
  server: DevServer;
  dir: string;
  db: string;
  taskQueue: string;
  env: NodeJS.ProcessEnv;
  client: Client;
  restartServer(opts?: { kill?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export async function startCluster(
  opts: { taskQueue?: string; ui?: boolean; uiCodecEndpoint?: string } = {},
): Promise<TestCluster> {
  const dir = tmpDir();
  let db = path.join(dir, 'temporal.sqlite');
  let port = 0;
  let uiPort: number | undefined;
  const start = () =>
    startDevServer({
      port,
      uiPort,
      db,
      headless: !opts.ui,
      log: path.join(dir, 'server.log'),
      uiCodecEndpoint: opts.uiCodecEndpoint,
    });
  // The ports are free when chosen, not when the server binds them: with test files running side by side, another
  // process may take one in between, and the server exits at start ("address already in use" in its log). Then it is
  // started again on new ports, with a new database file (at most 3 times). A restart keeps the ports it got.
  const firstStart = async (): Promise<DevServer> => {
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      uiPort = opts.ui ? await freePort() : undefined;
      const logFile = path.join(dir, 'server.log');
      const logFrom = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
      try {
        return await start();
      } catch (err) {
        const logged = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(logFrom) : '';
        const taken = /address already in use/.test(logged) || /already in use/.test((err as Error).message);
        if (attempt >= 3 || !taken) throw err;
        db = path.join(dir, `temporal-${attempt + 1}.sqlite`);
      }
    }
  };
  // Every worker started against this cluster (spawned, or the CLI's `worker` and `main`) reuses the run's one bundle.
  const [bundle, firstServer] = await Promise.all([sharedWorkflowBundle(), firstStart()]);
  let server = firstServer;
  const taskQueue = opts.taskQueue ?? `dt-${path.basename(dir)}`;
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_NAMESPACE: 'default',
    DURABLE_TRAIN_TASK_QUEUE: taskQueue,
    DURABLE_TRAIN_UI_URL: server.uiUrl ?? '',
    DURABLE_TRAIN_WORKFLOW_BUNDLE: bundle.codePath,
  };
  let connection = await Connection.connect({ address: server.address });
  const cluster: TestCluster = {
    server,
    dir,
    db,
    taskQueue,
    env,
    client: new Client({ connection }),
    async restartServer(o = {}) {
      await connection.close().catch(() => undefined);
      if (o.kill) await server.kill();
      else await server.stop();
      server = await start();
      cluster.server = server;
      connection = await Connection.connect({ address: server.address });
      cluster.client = new Client({ connection });
    },
    async close() {
      await connection.close().catch(() => undefined);
      await server.stop();
    },
  };
  return cluster;
}

export interface WorkerProcess {
  proc: ChildProcess;
  output: () => string;
  ready: Promise<void>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** The paced worker (test/replay/paced-worker.ts): the real worker with deterministic step and commit delays. */
export const PACED_WORKER = path.join(DIST, 'test', 'replay', 'paced-worker.js');

/**
 * Starts `node dist/worker.js` (or `script`, e.g. PACED_WORKER) in `cwd` (relative checkpoint paths resolve there).
 */
export function spawnWorker(
  cluster: TestCluster,
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; script?: string } = {},
): WorkerProcess {
  const proc = spawn(process.execPath, [opts.script ?? path.join(DIST, 'worker.js')], {
    cwd: opts.cwd ?? cluster.dir,
    env: { ...cluster.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes('durable-train worker:')) {
        clearInterval(timer);
        resolve();
      }
    }, 50);
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`worker exited (${code}) before it was ready:\n${out}`));
    });
  });
  ready.catch(() => undefined);
  return {
    proc,
    output: () => out,
    ready,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited;
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  json<T = unknown>(): T;
}

/** Runs the CLI as a user would (`node dist/client.js ...`), synchronously. */
export function cli(
  cluster: TestCluster | null,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): CliResult {
  const r = spawnSync(process.execPath, [path.join(DIST, 'client.js'), ...args], {
    cwd: opts.cwd ?? cluster?.dir ?? PROJECT_ROOT,
    env: { ...(cluster?.env ?? process.env), ...opts.env },
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 600_000,
  });
  return {
    code: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    json<T>() {
      try {
        return JSON.parse(r.stdout) as T;
      } catch {
        throw new Error(`CLI output is not JSON (exit ${r.status}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
      }
    },
  };
}

/**
 * Async variant, for commands that run while the test does other things (start --wait, watch); `onStdout` sees the
 * output so far each time more arrives.
 */
export function cliAsync(
  cluster: TestCluster,
  args: string[],
  opts: { cwd?: string; onStdout?: (stdout: string) => void } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [path.join(DIST, 'client.js'), ...args], {
      cwd: opts.cwd ?? cluster.dir,
      env: cluster.env,
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      opts.onStdout?.(stdout);
    });
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('exit', (code) =>
      resolve({
        code,
        stdout,
        stderr,
        json<T>() {
          return JSON.parse(stdout) as T;
        },
      }),
    );
  });
}

export function writeSpec(dir: string, name: string, spec: object): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(spec, null, 2));
  return file;
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 120_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}
