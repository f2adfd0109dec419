// A real TLS-terminating gRPC proxy for tests: a CA, server and client certificates made with openssl, and nginx
// (Debian's, installed by `scripts/setup.sh --test`) with `ssl_verify_client on` and `grpc_pass` to a plain-text
// Temporal frontend. The proxy's port is the only address clients get.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { freePort } from '../../cli/dev-server';

export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p)) ?? 'nginx';

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.error) throw new Error(`openssl is missing (run \`npm run setup:test\`): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.stderr}`);
}

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by another CA, which the proxy must refuse. */
  rogueCert: string;
  rogueKey: string;
}

/** A CA, a server certificate for localhost/127.0.0.1, a client certificate, and a rogue client (other CA). */
export function makePki(dir: string): TestPki {
  fs.mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string) =>
    openssl(dir, [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
  const leaf = (name: string, signer: string, ext: string) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${signer}.crt`,
      '-CAkey',
      `${signer}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ]);
  };
  ca('test-ca');
  ca('rogue-ca');
  leaf('server', 'test-ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'test-ca', 'extendedKeyUsage=clientAuth\n');
  leaf('rogue', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string) => path.join(dir, f);
  return {
    dir,
    caCert: p('test-ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    rogueCert: p('rogue.crt'),
    rogueKey: p('rogue.key'),
  };
}

export interface GrpcTlsProxy {
  /** host:port of the proxy (TLS, client certificate required). */
  address: string;
  port: number;
  log: () => string;
  stop(): Promise<void>;
}

export interface GrpcTlsProxyOptions {
  /** Require a client certificate signed by the test CA (mTLS). Default true. */
  clientCert?: boolean;
  /** Require `authorization: Bearer <apiKey>` (what Temporal Cloud API keys send), else HTTP 401. */
  apiKey?: string;
}

/** Starts nginx in the foreground with its own config in `dir`, proxying TLS gRPC to `upstream` (host:port). */
export async function startGrpcTlsProxy(
  dir: string,
  pki: TestPki,
  upstream: string,
  opts: GrpcTlsProxyOptions = {},
): Promise<GrpcTlsProxy> {
  if (opts.apiKey !== undefined && !/^[A-Za-z0-9_.-]+$/.test(opts.apiKey)) throw new Error('apiKey: [A-Za-z0-9_.-]+');
  const port = await freePort();
  const tmp = path.join(dir, 'nginx-tmp');
  fs.mkdirSync(tmp, { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  const asRoot = process.getuid?.() === 0;
  fs.writeFileSync(
    conf,
    `${asRoot ? 'user root;\n' : ''}daemon off;
worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'nginx-error.log')} info;
events { worker_connections 256; }
http {
  access_log ${path.join(dir, 'nginx-access.log')};
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${pki.serverCert};
    ssl_certificate_key ${pki.serverKey};
    ssl_client_certificate ${pki.caCert};
    ssl_verify_client ${opts.clientCert === false ? 'off' : 'on'};
    client_max_body_size 0;
    http2_max_requests 1000000;
    location / {
      # Workers long-poll for tasks (about a minute): keep the upstream stream open longer than that.
      grpc_read_timeout 600s;
      grpc_send_timeout 600s;
      ${opts.apiKey !== undefined ? `if ($http_authorization != "Bearer ${opts.apiKey}") { return 401; }` : ''}
      grpc_pass grpc://${upstream};
    }
  }
}
`,
  );
  if (!fs.existsSync(NGINX)) throw new Error(`nginx is missing (run \`npm run setup:test\`): looked for ${NGINX}`);
  const proc: ChildProcess = spawn(NGINX, ['-p', dir, '-c', conf, '-e', path.join(dir, 'nginx-error.log')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const log = () => {
    const f = path.join(dir, 'nginx-error.log');
    return out + (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`nginx exited (${proc.exitCode}) at start:\n${log()}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (open) break;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port}:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address: `127.0.0.1:${port}`,
    port,
    log,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM'); // fast shutdown of master and its worker
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
