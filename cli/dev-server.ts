// Runs the Temporal dev server (SQLite persistence, Web UI) and registers our search attributes.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { resolveTemporalCli, PROJECT_ROOT } from './tools';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { defineCommand } from './command';
import { EXIT, portOption } from './common';

export interface DevServerOptions {
  port?: number;
  uiPort?: number;
  /** SQLite file; created if missing. Default: .data/temporal.sqlite under the project. */
  db?: string;
  ip?: string;
  headless?: boolean;
  /** Where server logs go: 'inherit' or a file path. Default: .data/temporal-server.log */
  log?: 'inherit' | string;
  readyTimeoutMs?: number;
  /** The Web UI's remote codec endpoint (`durable-train codec-server`), so it shows decrypted payloads. */
  uiCodecEndpoint?: string;
}

export interface DevServer {
  address: string;
  uiUrl: string | null;
  db: string;
  pid: number | undefined;
  /** Graceful stop (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Hard kill, as a crash would. */
  kill(): Promise<void>;
  /** Exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Exit code and signal, to tell a clean stop from a kill. */
  exitStatus: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export const DEFAULT_DB = path.join(PROJECT_ROOT, '.data', 'temporal.sqlite');

/**
 * A port free on `host` now, for a server started next (tests, benchmarks). Picked at random below the kernel's
 * ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range), where neither outgoing connections nor other
 * processes' "any port" binds (port 0) take it before the server binds it; the kernel's own choice (port 0) when that
 * range is unknown or nothing free was found there.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const low = ephemeralLow();
  if (low !== null && low > 10_000) {
    for (let i = 0; i < 50; i++) {
      const port = 10_000 + Math.floor(Math.random() * (low - 10_000));
      if ((await bindPort(port, host)) === port) return port;
    }
  }
  const any = await bindPort(0, host);
  if (any === null) throw new Error(`no free port on ${host}`);
  return any;
}

/** The lowest port the kernel hands out by itself, or null where that is not known. */
function ephemeralLow(): number | null {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : null;
  } catch {
    return null;
  }
}

/** Binds `port` (0: any) on `host` and releases it: the port bound, or null when it was taken. */
function bindPort(port: number, host: string): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(null));
    srv.listen(port, host, () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr ? addr.port : null;
      srv.close(() => resolve(bound));
    });
  });
}

async function portInUse(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export async function waitForTemporal(address: string, timeoutMs: number, exited?: Promise<unknown>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let dead = false;
  void exited?.then(() => (dead = true));
  let lastError: unknown;
  while (Date.now() < deadline && !dead) {
    try {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await conn.workflowService.getSystemInfo({});
        return;
      } finally {
        await conn.close();
      }
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(
    dead
      ? `Temporal dev server exited before it was ready (see its log)`
      : `Temporal at ${address} not ready after ${timeoutMs} ms: ${String(lastError)}`,
  );
}

export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? port + 1000;
  const db = path.resolve(opts.db ?? DEFAULT_DB);
  fs.mkdirSync(path.dirname(db), { recursive: true });
  if (await portInUse(port, ip)) {
    throw new Error(
      `port ${port} on ${ip} is already in use (another dev server?); pass --port or set TEMPORAL_ADDRESS`,
    );
  }
  const cli = resolveTemporalCli();
  if (cli.kind !== 'path') {
    throw new Error(
      'Temporal CLI not found: run `npm run setup` (installs it into .tools/), put `temporal` on PATH, or set TEMPORAL_CLI_PATH',
    );
  }
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port), '--db-filename', db, '--log-level', 'warn'];
  args.push('--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true');
  if (opts.headless) args.push('--headless');
  else args.push('--ui-port', String(uiPort), '--ui-disable-news-fetch');
  if (opts.uiCodecEndpoint && !opts.headless) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);

  const logTarget = opts.log ?? path.join(path.dirname(db), 'temporal-server.log');
  let stdio: ['ignore', 'inherit' | number, 'inherit' | number];
  if (logTarget === 'inherit') stdio = ['ignore', 'inherit', 'inherit'];
  else {
    const fd = fs.openSync(logTarget, 'a');
    stdio = ['ignore', fd, fd];
  }
  const child: ChildProcess = spawn(cli.path, args, { stdio, detached: false });
  const exitStatus = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const exited = exitStatus.then((s) => s.code);
  const address = `${ip}:${port}`;
  try {
    await waitForTemporal(address, opts.readyTimeoutMs ?? 60_000, exited);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const kill = async (signal: NodeJS.Signals, graceMs: number) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return {
    address,
    uiUrl: opts.headless ? null : `http://${ip === '0.0.0.0' ? 'localhost' : ip}:${uiPort}`,
    db,
    pid: child.pid,
    stop: () => kill('SIGTERM', 10_000),
    kill: () => kill('SIGKILL', 0),
    exited,
    exitStatus,
  };
}

/** Where the dev server listens and keeps its state: `dev-server`'s flags, and `main`'s for its embedded one. */
export const DEV_SERVER_OPTIONS = [
  { name: 'port', value: 'P', description: "the dev server's port (default 7233)" },
  { name: 'ui-port', value: 'P', description: 'its Web UI port (default port + 1000)' },
  { name: 'db', value: 'FILE', description: 'its SQLite file (default .data/temporal.sqlite)' },
] as const;

export const devServerDefinition = defineCommand({
  name: 'dev-server',
  summary:
    'the Temporal dev server with SQLite persistence (default `.data/temporal.sqlite`), Web UI, our search attributes; exits non-zero if the server dies',
  options: [
    ...DEV_SERVER_OPTIONS,
    { name: 'headless', description: 'no Web UI' },
    {
      name: 'ui-codec-endpoint',
      value: 'URL',
      description: 'the Web UI decodes payloads there (`durable-train codec-server`)',
    },
  ],
  async run({ opts, out }) {
    const port = portOption(opts.port, 'port', 7233);
    const server = await startDevServer({
      port,
      uiPort: portOption(opts['ui-port'], 'ui-port', port + 1000),
      db: opts.db,
      headless: opts.headless,
      log: 'inherit',
      uiCodecEndpoint: opts['ui-codec-endpoint'],
    });
    out.emit(
      { address: server.address, uiUrl: server.uiUrl, db: server.db, pid: server.pid },
      () =>
        `Temporal dev server at ${server.address}${server.uiUrl ? `, Web UI ${server.uiUrl}` : ''}, SQLite ${server.db}\nCtrl-C to stop`,
    );
    let stopping = false;
    const stop = () => {
      stopping = true;
      void server.stop();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const { code, signal } = await server.exitStatus;
    if (stopping) return EXIT.ok;
    // The server went away without being asked to: a kill, a crash or a port clash. Not a success.
    process.stderr.write(
      `durable-train: the Temporal dev server (pid ${server.pid}) exited unexpectedly (${signal ? `killed by ${signal}` : `exit code ${code}`})\n`,
    );
    return code || EXIT.check;
  },
});
