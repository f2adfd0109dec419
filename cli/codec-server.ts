// `durable-train codec-server`: the Temporal Web UI's remote codec endpoint. The UI (or `temporal` with
// --codec-endpoint) POSTs {payloads: [...]} to /decode or /encode and shows what comes back, so people holding the
// endpoint see decrypted specs, progress and results while the server and its history only hold ciphertext.
// CORS answers only the UI's origin(s); a bearer token (DURABLE_TRAIN_CODEC_SERVER_TOKEN) is required when set.
import { timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { CodecKeyError, CODEC_KEYS_ENV } from '../codec';
import { codecFromEnvForCli } from './connection';
import { CliError, EXIT, portOption, type Out } from './common';
import { defineCommand } from './command';

export const CODEC_TOKEN_ENV = 'DURABLE_TRAIN_CODEC_SERVER_TOKEN';
const MAX_BODY = 16 * 1024 * 1024;

export interface CodecServerOptions {
  codec: PayloadCodec;
  port?: number;
  host?: string;
  /** Origins allowed by CORS (the Web UI's, e.g. http://localhost:8233); '*' allows any. */
  origins: string[];
  /** When set, requests need `Authorization: Bearer <token>`. */
  token?: string;
}

export interface CodecServer {
  url: string;
  close(): Promise<void>;
}

/** Payloads in the proto3 JSON form the UI sends: metadata values and data in base64. */
interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

function fromJson(p: JsonPayload): Payload {
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = new Uint8Array(Buffer.from(String(v), 'base64'));
  return { metadata, data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')) };
}

function toJson(p: Payload): JsonPayload {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) if (v) metadata[k] = Buffer.from(v).toString('base64');
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/i.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startCodecServer(opts: CodecServerOptions): Promise<CodecServer> {
  const allowAny = opts.origins.includes('*');
  const server = http.createServer((req, res) => {
    const origin = req.headers.origin;
    const originAllowed = origin !== undefined && (allowAny || opts.origins.includes(origin));
    if (originAllowed) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Access-Control-Max-Age', '600');
    }
    res.setHeader('Vary', 'Origin');
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const route = (req.url ?? '').split('?')[0].replace(/\/+$/, '');
    const op = route.endsWith('/decode') ? 'decode' : route.endsWith('/encode') ? 'encode' : null;
    if (!op) return reply(404, { error: 'not found: POST /decode or /encode' });
    if (origin !== undefined && !originAllowed)
      return reply(403, { error: `origin ${origin} is not allowed (codec-server --cors-origin)` });
    if (req.method === 'OPTIONS') return res.writeHead(204).end();
    if (req.method !== 'POST') return reply(405, { error: 'use POST' });
    if (opts.token && !tokenMatches(req.headers.authorization, opts.token))
      return reply(401, { error: 'missing or wrong bearer token' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reply(413, { error: `body larger than ${MAX_BODY} bytes` });
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
      let payloads: Payload[];
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { payloads?: unknown };
        if (!Array.isArray(body.payloads)) throw new Error('expected {"payloads": [...]}');
        payloads = (body.payloads as JsonPayload[]).map(fromJson);
      } catch (err) {
        return reply(400, { error: `bad request body: ${(err as Error).message}` });
      }
      opts.codec[op](payloads).then(
        (result) => reply(200, { payloads: result.map(toJson) }),
        (err: Error) => reply(err instanceof CodecKeyError ? 400 : 500, { error: err.message }),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8081, opts.host ?? '127.0.0.1', resolve);
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The CLI command: keys from DURABLE_TRAIN_CODEC_KEYS, runs until Ctrl-C. */
export async function codecServerCommand(
  out: Out,
  opts: { port: number; host?: string; origins?: string[] },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const codec = codecFromEnvForCli(env);
  if (codec.keyIds.length === 0)
    throw new CliError(`codec-server: ${CODEC_KEYS_ENV} is not set (id=base64key[,...])`, EXIT.usage);
  const origins = opts.origins?.length ? opts.origins : [env.DURABLE_TRAIN_UI_URL || 'http://localhost:8233'];
  const token = env[CODEC_TOKEN_ENV] || undefined;
  const server = await startCodecServer({ codec, port: opts.port, host: opts.host, origins, token });
  out.emit(
    { url: server.url, origins, keyIds: codec.keyIds, token: Boolean(token) },
    () =>
      `codec server at ${server.url} (keys ${codec.keyIds.join(', ')}; CORS for ${origins.join(', ')}` +
      `${token ? '; bearer token required' : ''})\n` +
      `point the Web UI at it: temporal server start-dev --ui-codec-endpoint ${server.url}, or its codec settings`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return EXIT.ok;
}

export const codecServerDefinition = defineCommand({
  name: 'codec-server',
  summary: "the Web UI's remote codec endpoint (`/decode`, `/encode`) with `DURABLE_TRAIN_CODEC_KEYS`",
  details: `Bearer token: ${CODEC_TOKEN_ENV} (required when set). Runs until Ctrl-C.`,
  options: [
    { name: 'port', value: 'P', description: 'port to listen on (default 8081)' },
    { name: 'host', value: 'H', description: 'address to listen on (default 127.0.0.1)' },
    {
      name: 'cors-origin',
      value: 'URL',
      multiple: true,
      description:
        "the Web UI's origin allowed to call it (repeatable; default DURABLE_TRAIN_UI_URL or http://localhost:8233)",
    },
  ],
  async run({ opts, out }) {
    return codecServerCommand(out, {
      port: portOption(opts.port, 'port', 8081),
      host: opts.host,
      origins: opts['cors-origin'],
    });
  },
});
