// Where the CLI, the worker and the main job find Temporal, loaded the Temporal way with @temporalio/envconfig: a
// profile of the TOML config file (TEMPORAL_CONFIG_FILE, default ~/.config/temporalio/temporal.toml; TEMPORAL_PROFILE
// picks one), overridden by TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and TEMPORAL_TLS_*. With none of
// them: the embedded dev server on localhost:7233, plain text. DURABLE_TRAIN_CODEC_KEYS turns on payload encryption.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import { loadClientConfigProfile, type ClientConfigProfile, type ConfigDataSource } from '@temporalio/envconfig';
import { codecFromEnv, CodecKeyError, CODEC_KEYS_ENV } from '../codec';
import { failureConverter } from '../codec/failure-converter';
import { CliError, EXIT } from './common';

export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
  /** Web UI base URL, when known (the dev server's, or DURABLE_TRAIN_UI_URL). */
  uiUrl: string | null;
  /** True when no profile or variable names a cluster: the embedded dev server (`npm start` starts one). */
  embedded?: boolean;
  /** TLS: true for the system CAs, or a custom CA, server name and client certificate (mTLS). */
  tls?: TLSConfig | boolean;
  /** Temporal Cloud API key (sent as a bearer token; implies TLS). */
  apiKey?: string;
  /** Extra gRPC headers (profile grpc_meta, TEMPORAL_GRPC_META_*). */
  metadata?: Record<string, string>;
  /** Payload codecs for the client and the worker (DURABLE_TRAIN_CODEC_KEYS: AES-256-GCM). */
  payloadCodecs?: PayloadCodec[];
  /** With codec keys set: failure messages and stacks go into encrypted payloads (codec/failure-converter.ts). */
  encryptFailures?: boolean;
}

/** Where a setting came from, for messages: the variable when set, else the profile's key. */
function origin(env: NodeJS.ProcessEnv, variable: string, tomlKey: string): string {
  if (env[variable] !== undefined) return variable;
  const profile = env.TEMPORAL_PROFILE || 'default';
  const file = env.TEMPORAL_CONFIG_FILE ? ` of ${env.TEMPORAL_CONFIG_FILE}` : '';
  return `${tomlKey} in profile "${profile}"${file}`;
}

/** Reads a certificate or key (a path or inline data) and checks it is PEM of the right kind. */
function pem(source: ConfigDataSource | undefined, what: string, kind: RegExp, from: string): Uint8Array | undefined {
  if (!source) return undefined;
  let bytes: Buffer;
  if ('path' in source) {
    try {
      bytes = fs.readFileSync(source.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'unreadable');
      throw new CliError(`cannot read the ${what} file ${source.path} (${from}): ${why}`, EXIT.usage);
    }
  } else {
    bytes = Buffer.from(source.data);
  }
  const text = bytes.toString('latin1');
  if (!/-----BEGIN [A-Z ]+-----/.test(text) || !kind.test(text)) {
    const where = 'path' in source ? `file ${source.path}` : 'data';
    throw new CliError(`the ${what} ${where} (${from}) is not a PEM ${kind.source.replace(/\\/g, '')}`, EXIT.usage);
  }
  return new Uint8Array(bytes);
}

function tlsFromProfile(profile: ClientConfigProfile, env: NodeJS.ProcessEnv): TLSConfig | boolean | undefined {
  const t = profile.tls;
  if (t === undefined) return profile.apiKey !== undefined ? true : undefined;
  if (t.disabled) return false;
  const crt = pem(
    t.clientCert,
    'TLS client certificate',
    /CERTIFICATE/,
    origin(
      env,
      t.clientCert && 'path' in t.clientCert ? 'TEMPORAL_TLS_CLIENT_CERT_PATH' : 'TEMPORAL_TLS_CLIENT_CERT_DATA',
      'tls.client_cert_*',
    ),
  );
  const key = pem(
    t.clientKey,
    'TLS client key',
    /PRIVATE KEY/,
    origin(
      env,
      t.clientKey && 'path' in t.clientKey ? 'TEMPORAL_TLS_CLIENT_KEY_PATH' : 'TEMPORAL_TLS_CLIENT_KEY_DATA',
      'tls.client_key_*',
    ),
  );
  if (Boolean(crt) !== Boolean(key))
    throw new CliError(
      `TLS: a client ${crt ? 'certificate' : 'key'} is given without its ${crt ? 'key' : 'certificate'} ` +
        `(set both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, or neither)`,
      EXIT.usage,
    );
  const ca = pem(
    t.serverCACert,
    'TLS server CA certificate',
    /CERTIFICATE/,
    origin(
      env,
      t.serverCACert && 'path' in t.serverCACert
        ? 'TEMPORAL_TLS_SERVER_CA_CERT_PATH'
        : 'TEMPORAL_TLS_SERVER_CA_CERT_DATA',
      'tls.server_ca_cert_*',
    ),
  );
  return {
    ...(t.serverName ? { serverNameOverride: t.serverName } : {}),
    ...(ca ? { serverRootCACertificate: ca } : {}),
    ...(crt && key ? { clientCertPair: { crt, key } } : {}),
  };
}

export function temporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  let profile: ClientConfigProfile;
  try {
    profile = loadClientConfigProfile({ overrideEnvVars: env as Record<string, string> });
  } catch (err) {
    const file = env.TEMPORAL_CONFIG_FILE ? ` (${env.TEMPORAL_CONFIG_FILE})` : '';
    throw new CliError(`Temporal connection profile${file}: ${(err as Error).message.split('\n')[0]}`, EXIT.usage);
  }
  const codec = codecFromEnvForCli(env);
  const embedded = !profile.address;
  return {
    address: profile.address || 'localhost:7233',
    namespace: profile.namespace || 'default',
    taskQueue: env.DURABLE_TRAIN_TASK_QUEUE || 'durable-train',
    uiUrl: env.DURABLE_TRAIN_UI_URL || (embedded ? 'http://localhost:8233' : null),
    embedded,
    tls: tlsFromProfile(profile, env),
    ...(profile.apiKey ? { apiKey: profile.apiKey } : {}),
    ...(profile.grpcMeta ? { metadata: profile.grpcMeta } : {}),
    payloadCodecs: [codec],
    encryptFailures: Boolean(env[CODEC_KEYS_ENV]?.trim()),
  };
}

/** The connection options both the client (grpc-js) and the worker (Rust core) take. */
export function connectionOptions(settings: TemporalSettings) {
  return {
    address: settings.address,
    ...(settings.tls !== undefined ? { tls: settings.tls } : {}),
    ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
    ...(settings.metadata ? { metadata: settings.metadata } : {}),
  };
}

const usesClientCert = (s: TemporalSettings) => typeof s.tls === 'object' && Boolean(s.tls.clientCertPair);

/**
 * What a failed connection means, in words: an untrusted server certificate, a refused client certificate, a
 * server that does not speak TLS, refused credentials, a missing namespace. Null when the error says none of them.
 */
export function explainConnectionError(err: unknown, settings: TemporalSettings): string | null {
  const parts: string[] = [];
  let code: unknown;
  for (let e = err as { message?: unknown; code?: unknown; cause?: unknown; details?: unknown } | undefined; e;) {
    parts.push(String(e.message ?? ''), String(e.details ?? ''));
    code ??= e.code;
    e = e.cause as typeof e;
  }
  const text = parts.join(' | ');
  const at = `Temporal at ${settings.address}`;
  if (
    /unable to verify|self[- ]signed|unknown ca|certificate verify failed|UnknownIssuer|invalid peer certificate/i.test(
      text,
    )
  )
    return (
      `${at}: the server's TLS certificate is not trusted; give the CA that signed it with ` +
      `TEMPORAL_TLS_SERVER_CA_CERT_PATH (or tls.server_ca_cert_path in the profile)`
    );
  if (/does not match|altname|NotValidForName|subject ?alt/i.test(text))
    return `${at}: the server's TLS certificate is for another name; set TEMPORAL_TLS_SERVER_NAME to the name it carries`;
  if (
    /wrong version number|packet length too long|InvalidContentType|CorruptMessage|http\/1\.x|not a TLS/i.test(text) &&
    settings.tls
  )
    return `${at} does not speak TLS on that port; check the address, or turn TLS off (TEMPORAL_TLS=false)`;
  if (
    /certificate required|No required SSL certificate|bad certificate|alert.*certificate|certificate.*(refused|rejected|revoked|expired|unknown)|status code 400|400 Bad Request|HandshakeFailure|handshake failure/i.test(
      text,
    )
  )
    return usesClientCert(settings)
      ? `${at} refused our TLS client certificate (mTLS): it is not signed by a CA the server trusts, or has expired`
      : `${at} requires a TLS client certificate (mTLS) and none was given; set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (or tls.client_cert_path and tls.client_key_path in the profile)`;
  if (code === 16 || /UNAUTHENTICATED|status code 401|401 Unauthorized/i.test(text))
    return `${at} refused our credentials${settings.apiKey ? ' (the API key from TEMPORAL_API_KEY or the profile is invalid or expired)' : ' (it needs an API key: TEMPORAL_API_KEY, or a client certificate)'}`;
  if (code === 7 || /PERMISSION_DENIED|status code 403/i.test(text))
    return `${at}: permission denied for namespace "${settings.namespace}" with these credentials`;
  if ((code === 5 || /NOT_FOUND|NotFound|not found/i.test(text)) && /namespace/i.test(text))
    return `namespace "${settings.namespace}" does not exist on ${at} (TEMPORAL_NAMESPACE or the profile's namespace)`;
  return null;
}

/**
 * When a connection fails without saying why (grpc-js: "Failed to connect before the deadline"), one TLS handshake
 * of our own tells: an untrusted server certificate, a server that speaks TLS to a plain-text client, or none.
 */
export async function probeTls(settings: TemporalSettings): Promise<string | null> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(settings.address);
  if (!m) return null;
  const t = typeof settings.tls === 'object' ? settings.tls : {};
  const attempt = await new Promise<Error | 'secure' | null>((resolve) => {
    const socket = tls.connect({
      host: m[1],
      port: Number(m[2]),
      ALPNProtocols: ['h2'],
      servername: t.serverNameOverride ?? (net.isIP(m[1]) ? undefined : m[1]),
      rejectUnauthorized: Boolean(settings.tls),
      ...(t.serverRootCACertificate ? { ca: Buffer.from(t.serverRootCACertificate) } : {}),
      ...(t.clientCertPair ? { cert: Buffer.from(t.clientCertPair.crt), key: Buffer.from(t.clientCertPair.key) } : {}),
    });
    const done = (r: Error | 'secure' | null) => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(3000, () => done(null));
    socket.once('secureConnect', () => done('secure'));
    socket.once('error', (err) => done(err));
  });
  if (attempt === null) return null;
  if (!settings.tls)
    return attempt === 'secure'
      ? `Temporal at ${settings.address} speaks TLS and we do not: turn TLS on (TEMPORAL_TLS=true, plus TEMPORAL_TLS_SERVER_CA_CERT_PATH for a private CA)`
      : null;
  return attempt === 'secure' ? null : explainConnectionError(attempt, settings);
}

/** Fails with the explanation when the namespace is missing or the credentials are refused; silent otherwise. */
export async function checkNamespace(connection: Connection, settings: TemporalSettings): Promise<void> {
  try {
    await connection.workflowService.describeNamespace({ namespace: settings.namespace });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 7) return; // some API keys may not describe their namespace: the first real call says more
    const explained = explainConnectionError(err, settings);
    if (explained) throw new CliError(explained, code === 5 ? EXIT.notFound : EXIT.unreachable);
  }
}

export async function connectClient(settings = temporalSettings()): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...connectionOptions(settings), connectTimeout: 5000 });
  } catch (err) {
    const explained = explainConnectionError(err, settings) ?? (await probeTls(settings));
    if (explained) throw new CliError(explained, EXIT.unreachable);
    throw new CliError(
      `cannot reach Temporal at ${settings.address} (${(err as Error).message}). ` +
        `Start one with \`durable-train dev-server\` or set TEMPORAL_ADDRESS.`,
      EXIT.unreachable,
    );
  }
  try {
    await checkNamespace(connection, settings);
  } catch (err) {
    await connection.close();
    throw err;
  }
  return new Client({
    connection,
    namespace: settings.namespace,
    ...(settings.payloadCodecs
      ? {
          dataConverter: {
            payloadCodecs: settings.payloadCodecs,
            ...(settings.encryptFailures ? { failureConverter } : {}),
          },
        }
      : {}),
  });
}

export function runUrl(settings: TemporalSettings, runId: string): string | null {
  return settings.uiUrl
    ? `${settings.uiUrl}/namespaces/${settings.namespace}/workflows/${encodeURIComponent(runId)}`
    : null;
}

/** The payload codec from DURABLE_TRAIN_CODEC_KEYS; a malformed key list is a usage error (exit 2) naming the key. */
export function codecFromEnvForCli(env: NodeJS.ProcessEnv = process.env): ReturnType<typeof codecFromEnv> {
  try {
    return codecFromEnv(env);
  } catch (err) {
    if (err instanceof CodecKeyError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}
