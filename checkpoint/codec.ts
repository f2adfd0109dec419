// Manifest codec: strict JSON checks, canonical encoding for the id hash, parsing with validation.
import { createHash, webcrypto } from 'node:crypto';
import { idProblem } from '../spec/ids';
import { parseChain } from './rows';
import type { CheckpointRef, Manifest, ManifestBlob, StoredPiece } from './types';

/** The format of a manifest whose blobs are all stored whole. */
export const FORMAT_VERSION = 1 as const;
/** The format of a manifest with a blob stored as a row chain (`rows`): readers of version 1 refuse it. */
export const ROWS_FORMAT_VERSION = 2 as const;
const READS = [FORMAT_VERSION, ROWS_FORMAT_VERSION] as const;

/** The version a manifest with these blobs is written in. */
export const formatVersionOf = (blobs: readonly ManifestBlob[]) =>
  blobs.some((b) => b.rows) ? ROWS_FORMAT_VERSION : FORMAT_VERSION;

/** Bytes per element for dtypes whose size we can check; other dtypes (e.g. 'string') are not checked. */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  float32: 4,
  int32: 4,
  float16: 2,
  float64: 8,
  int16: 2,
  uint16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The largest blob a manifest may name: 4 GiB, the most one Node buffer holds. A manifest claiming more is refused
 * when decoded, before anything could be sized from the claim.
 */
export const MAX_BLOB_BYTES = 2 ** 32;
/** The most dimensions a blob's shape may have (tfjs tensors have at most 6). */
export const MAX_RANK = 16;
/** How deep the JSON state may nest: canonical JSON (the id's hash) walks it recursively. */
export const MAX_STATE_DEPTH = 256;

/** A stored value as an error message shows it: JSON, cut to 80 characters (a hostile file may hold megabytes). */
function brief(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Whether a JSON value nests deeper than `max` (iterative: any depth is measured without recursion). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= max) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}
/** Ours: a step of at most 16 digits (a safe integer), so an id always fits in a file name. */
export const CHECKPOINT_ID = /^step-(\d{9,16})-([0-9a-f]{8})$/;

/**
 * Run ids become path segments and object keys: the one id rule of the CLI and the worker (spec/ids.ts), so the
 * store accepts exactly the run ids they let through.
 */
export function assertSafeName(kind: string, value: string): void {
  const problem = idProblem(value);
  if (problem) throw new Error(`invalid ${kind} ${JSON.stringify(value)}: ${problem}`);
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * sha256 of a buffer computed on the libuv pool (WebCrypto's digest), not on the calling thread: a persist that runs
 * while training goes on hashes on another core. Node copies the bytes into the job first (a memcpy on this thread).
 */
export async function sha256HexOffThread(data: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex');
}

/** sha256 of a large buffer, yielding to the event loop between slices so heartbeats keep flowing. */
export async function sha256HexYielding(data: Uint8Array, slice = 8 << 20): Promise<string> {
  if (data.byteLength <= slice) return sha256Hex(data);
  const h = createHash('sha256');
  for (let off = 0; off < data.byteLength; off += slice) {
    h.update(data.subarray(off, Math.min(off + slice, data.byteLength)));
    await new Promise<void>((r) => setImmediate(r));
  }
  return h.digest('hex');
}

export function checkpointId(step: number, bodyHash: string): string {
  return `step-${String(step).padStart(9, '0')}-${bodyHash.slice(0, 8)}`;
}

/** The step encoded in a checkpoint id, or -1. Used for manifests that no longer parse. */
export function stepFromId(id: string): number {
  const m = CHECKPOINT_ID.exec(id);
  return m ? Number(m[1]) : -1;
}

/**
 * Throws unless `value` survives JSON unchanged: finite numbers, strings, booleans, null, arrays and plain
 * objects. Exactness depends on it: NaN would come back as null, a Date as a string, a Map as {}.
 */
export function assertJson(value: unknown, path: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`${path} is ${value}: JSON cannot store non-finite numbers`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      if (v === undefined) throw new TypeError(`${path}[${i}] is undefined: JSON would turn it into null`);
      assertJson(v, `${path}[${i}]`);
    });
    return;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(
        `${path} is a ${proto?.constructor?.name ?? 'non-plain object'}: only plain objects survive JSON`,
      );
    }
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue; // dropped by JSON, reads back as absent: same meaning
      assertJson(v, `${path}.${k}`);
    }
    return;
  }
  throw new TypeError(`${path} is a ${typeof value}: not JSON`);
}

/** JSON with object keys sorted at every level: the same value always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const keys = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** The hash the id is derived from: canonical JSON of the manifest without its `id` and `signature`. */
export function manifestBodyHash(m: Omit<Manifest, 'id'> & { id?: string }): string {
  const body: Record<string, unknown> = { ...m };
  delete body.id;
  delete body.signature;
  return sha256Hex(canonicalJson(body));
}

/** The stored form: readable, fields in a fixed logical order, state keys in the caller's order. */
export function encodeManifest(m: Manifest): Uint8Array {
  const ordered: Manifest = {
    formatVersion: m.formatVersion,
    id: m.id,
    runId: m.runId,
    step: m.step,
    epoch: m.epoch,
    createdAt: m.createdAt,
    ...(m.reason !== undefined ? { reason: m.reason } : {}),
    parent: m.parent,
    metrics: m.metrics,
    fingerprints: m.fingerprints,
    backend: m.backend,
    blobs: m.blobs.map((b) => ({
      name: b.name,
      dtype: b.dtype,
      shape: b.shape,
      sha256: b.sha256,
      size: b.size,
      ...(b.rows ? { rows: { base: b.rows.base, patches: b.rows.patches } } : {}),
    })),
    state: m.state,
    ...(m.signature ? { signature: { keyId: m.signature.keyId, hmacSha256: m.signature.hmacSha256 } } : {}),
  };
  return new TextEncoder().encode(JSON.stringify(ordered, null, 1) + '\n');
}

/** Expected byte size for a dtype and shape, or null when the dtype's element size is unknown. */
export function expectedSize(dtype: string, shape: number[]): number | null {
  const bytes = DTYPE_BYTES[dtype];
  if (bytes === undefined) return null;
  return shape.reduce((a, b) => a * b, 1) * bytes;
}

export function validShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** A stored piece's address and size, checked; `what` names it in the error. */
function parsePiece(v: unknown, what: string): StoredPiece {
  const { sha256, size } = isObj(v) ? v : {};
  if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) throw new Error(`${what}: sha256 is not 64 hex digits`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new Error(`${what}: bad size`);
  if (size > MAX_BLOB_BYTES) throw new Error(`${what}: ${size} bytes is larger than a blob can be (${MAX_BLOB_BYTES})`);
  return { sha256, size };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseRef(v: unknown): CheckpointRef | null {
  if (v === null) return null;
  if (isObj(v) && typeof v.runId === 'string' && typeof v.id === 'string') return { runId: v.runId, id: v.id };
  throw new Error('parent is neither null nor {runId, id}');
}

/**
 * Parses and checks a stored manifest: structure, field types, that its id is the one it is stored under and
 * that the id's hash matches the body (so a flipped byte that still parses is caught). Throws with a reason.
 */
export function decodeManifest(bytes: Uint8Array, expectedId: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new Error(`manifest does not parse (${bytes.byteLength} bytes): ${(err as Error).message}`);
  }
  if (!isObj(raw)) throw new Error('manifest is not a JSON object');
  const version = raw.formatVersion;
  if (!READS.includes(version as 1 | 2)) {
    throw new Error(`unsupported formatVersion ${brief(version)} (this build reads ${READS.join(' and ')})`);
  }
  const str = (k: string): string => {
    if (typeof raw[k] !== 'string') throw new Error(`manifest field ${k} is not a string`);
    return raw[k] as string;
  };
  const num = (k: string): number => {
    if (typeof raw[k] !== 'number' || !Number.isFinite(raw[k])) throw new Error(`manifest field ${k} is not a number`);
    return raw[k] as number;
  };
  const id = str('id');
  if (id !== expectedId) throw new Error(`manifest says id ${brief(id)} but is stored as ${expectedId}`);
  const step = num('step');
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`manifest step ${step} is not a non-negative integer`);
  if (!Array.isArray(raw.blobs)) throw new Error('manifest field blobs is not an array');
  const names = new Set<string>();
  const blobs: ManifestBlob[] = raw.blobs.map((b, i) => {
    if (!isObj(b)) throw new Error(`blobs[${i}] is not an object`);
    const { name, dtype, shape, sha256, size, rows } = b;
    if (typeof name !== 'string' || !name) throw new Error(`blobs[${i}].name is not a non-empty string`);
    const blob = `blob ${name.length > 80 ? `${name.slice(0, 77)}...` : name}`;
    if (names.has(name)) throw new Error(`${blob} appears twice`);
    names.add(name);
    if (typeof dtype !== 'string') throw new Error(`${blob}: dtype is not a string`);
    if (!validShape(shape)) throw new Error(`${blob}: shape is not a list of non-negative integers`);
    if (shape.length > MAX_RANK) throw new Error(`${blob}: shape has ${shape.length} dimensions, at most ${MAX_RANK}`);
    const own = parsePiece({ sha256, size }, blob);
    const want = expectedSize(dtype, shape);
    if (want !== null && want !== own.size)
      throw new Error(`${blob}: ${brief(dtype)}[${shape.join(',')}] needs ${want} bytes, manifest says ${own.size}`);
    if (rows === undefined) return { name, dtype, shape, ...own };
    if (version !== ROWS_FORMAT_VERSION) throw new Error(`${blob}: rows needs formatVersion ${ROWS_FORMAT_VERSION}`);
    const chain = parseChain(rows, blob, parsePiece);
    if (chain.base.size !== own.size)
      throw new Error(`${blob}: rows.base is ${chain.base.size} bytes, not ${own.size}`);
    return { name, dtype, shape, ...own, rows: chain };
  });
  const metrics = raw.metrics;
  if (!isObj(metrics) || !Object.values(metrics).every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new Error('manifest field metrics is not an object of numbers');
  }
  const fingerprints = raw.fingerprints;
  if (!isObj(fingerprints) || !Object.values(fingerprints).every((v) => typeof v === 'string')) {
    throw new Error('manifest field fingerprints is not an object of strings');
  }
  const backend = raw.backend;
  if (!isObj(backend) || typeof backend.name !== 'string' || typeof backend.version !== 'string') {
    throw new Error('manifest field backend is not {name, version}');
  }
  if (raw.reason !== undefined && typeof raw.reason !== 'string')
    throw new Error('manifest field reason is not a string');
  if (!('state' in raw)) throw new Error('manifest has no state');
  if (nestsDeeperThan(raw.state, MAX_STATE_DEPTH))
    throw new Error(`manifest field state nests deeper than ${MAX_STATE_DEPTH} levels`);
  const sig = raw.signature;
  if (sig !== undefined && !(isObj(sig) && typeof sig.keyId === 'string' && typeof sig.hmacSha256 === 'string'))
    throw new Error('manifest field signature is not {keyId, hmacSha256}');
  if (version === ROWS_FORMAT_VERSION && !blobs.some((b) => b.rows))
    throw new Error(`formatVersion ${ROWS_FORMAT_VERSION} but no blob is stored as rows`);
  const m: Manifest = {
    formatVersion: version as 1 | 2,
    id,
    runId: str('runId'),
    step,
    epoch: num('epoch'),
    createdAt: str('createdAt'),
    parent: parseRef(raw.parent),
    blobs,
    state: raw.state,
    metrics: metrics as Record<string, number>,
    fingerprints: fingerprints as Record<string, string>,
    backend: { name: backend.name, version: backend.version },
    ...(raw.reason !== undefined ? { reason: raw.reason as string } : {}),
    ...(isObj(sig) ? { signature: { keyId: sig.keyId as string, hmacSha256: sig.hmacSha256 as string } } : {}),
  };
  const expect = checkpointId(step, manifestBodyHash(m));
  if (expect !== id) throw new Error(`manifest content does not match its id (content hash gives ${expect})`);
  return m;
}
