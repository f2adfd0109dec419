// Signed manifests: an HMAC-SHA256 over the manifest's canonical form, with the id of the key that made it, so a
// store that anyone can write no longer means checkpoints anyone can forge. Content hashes stop corruption; only a
// key the writer does not hold stops tampering. Optional: without keys nothing is signed or checked.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from './codec';
import type { Manifest, ManifestSignature } from './types';

/** The environment variable with the keys: `id=base64key[,id2=base64key2...]`; the first signs, all verify. */
export const CHECKPOINT_KEY_ENV = 'DURABLE_TRAIN_CHECKPOINT_KEY';

/** Shortest accepted key: 256 bits, the HMAC-SHA256 block's worth of entropy that matters (`openssl rand -base64 32`). */
export const MIN_KEY_BYTES = 32;

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** What the signature covers: canonical JSON (keys sorted at every level) of the manifest without `signature`. */
export function canonicalManifest(m: Manifest): string {
  const body: Record<string, unknown> = { ...m };
  delete body.signature;
  return canonicalJson(body);
}

/**
 * The checkpoint keys of one process. The key bytes live in a private field: never in a message, a log line,
 * `JSON.stringify` or `util.inspect` output (which show only the ids).
 */
export class CheckpointKeys {
  readonly #keys: ReadonlyMap<string, Buffer>;
  /** Key ids in the order given; the first signs. */
  readonly ids: readonly string[];

  constructor(keys: ReadonlyArray<{ id: string; key: Uint8Array }>) {
    if (!keys.length) throw new Error('checkpoint keys: at least one key is needed');
    const map = new Map<string, Buffer>();
    for (const { id, key } of keys) {
      if (typeof id !== 'string' || !KEY_ID.test(id))
        throw new Error(
          `checkpoint key id ${JSON.stringify(id)}: use 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric`,
        );
      if (map.has(id)) throw new Error(`checkpoint key id ${id} is given twice`);
      if (!(key instanceof Uint8Array) || key.byteLength < MIN_KEY_BYTES)
        throw new Error(`checkpoint key ${id} is too short: at least ${MIN_KEY_BYTES} bytes (openssl rand -base64 32)`);
      map.set(id, Buffer.from(key));
    }
    this.#keys = map;
    this.ids = [...map.keys()];
  }

  /** The keys themselves, for this process's checkpoint persist thread only (handed over in memory). */
  forPersistThread(): Array<{ id: string; key: Uint8Array }> {
    return [...this.#keys].map(([id, key]) => ({ id, key: new Uint8Array(key) }));
  }

  /** Parses `id=base64key[,id2=base64key2...]`. Errors name the entry by position and id, never the key. */
  static parse(text: string, source = CHECKPOINT_KEY_ENV): CheckpointKeys {
    const entries = text.split(',').map((e) => e.trim());
    const keys = entries.map((entry, i) => {
      const where = `${source} entry ${i + 1}`;
      if (!entry) throw new Error(`${where} is empty: use id=base64key[,id2=base64key2]`);
      const eq = entry.indexOf('=');
      if (eq <= 0) throw new Error(`${where} has no key id: use id=base64key[,id2=base64key2]`);
      const id = entry.slice(0, eq).trim();
      const b64 = entry.slice(eq + 1).trim();
      // A bare base64 key (the id forgotten) splits at its padding: say so without echoing any of it.
      if (/^=*$/.test(b64)) throw new Error(`${where} has no key id or no key: use id=base64key[,id2=base64key2]`);
      if (!KEY_ID.test(id))
        throw new Error(
          `${where}: key id ${JSON.stringify(id)} is not 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric`,
        );
      if (!b64 || !BASE64.test(b64)) throw new Error(`${where} (key ${id}): the key is not base64`);
      const key = Buffer.from(b64, 'base64');
      if (key.byteLength < MIN_KEY_BYTES)
        throw new Error(
          `${where} (key ${id}): the key is ${key.byteLength} bytes, at least ${MIN_KEY_BYTES} are needed ` +
            '(make one with: openssl rand -base64 32)',
        );
      return { id, key };
    });
    try {
      return new CheckpointKeys(keys);
    } catch (err) {
      throw new Error(`${source}: ${(err as Error).message}`);
    }
  }

  /** The key that signs new manifests. */
  get signingKeyId(): string {
    return this.ids[0];
  }

  /** The signature of a manifest (its own `signature` field, if any, is ignored) with the signing key. */
  sign(m: Manifest): ManifestSignature {
    return { keyId: this.signingKeyId, hmacSha256: this.mac(this.signingKeyId, m) };
  }

  /**
   * Why the manifest's signature is not acceptable, or null when it is: missing, made with a key this process
   * does not hold, or not matching. The text completes "checkpoint X ...".
   */
  problem(m: Manifest): SignatureProblem | null {
    const sig = m.signature;
    if (!sig) return { kind: 'missing', text: 'is not signed' };
    if (!this.#keys.has(sig.keyId))
      return {
        kind: 'unknown-key',
        text: `is signed with key ${JSON.stringify(sig.keyId)}, which is not among this process's keys (${this.ids.join(', ')})`,
      };
    const want = Buffer.from(this.mac(sig.keyId, m), 'hex');
    const got = HEX64.test(sig.hmacSha256) ? Buffer.from(sig.hmacSha256, 'hex') : Buffer.alloc(0);
    if (got.byteLength !== want.byteLength || !timingSafeEqual(got, want))
      return { kind: 'mismatch', text: `has a signature that does not match its content (key ${sig.keyId})` };
    return null;
  }

  toJSON(): { ids: readonly string[] } {
    return { ids: this.ids };
  }

  private mac(keyId: string, m: Manifest): string {
    return createHmac('sha256', this.#keys.get(keyId)!).update(canonicalManifest(m), 'utf8').digest('hex');
  }
}

export interface SignatureProblem {
  kind: 'missing' | 'unknown-key' | 'mismatch';
  /** Completes a sentence whose subject is the checkpoint. */
  text: string;
}

/** The keys from DURABLE_TRAIN_CHECKPOINT_KEY, or undefined when it is unset or empty (signing off). */
export function checkpointKeysFromEnv(env: NodeJS.ProcessEnv = process.env): CheckpointKeys | undefined {
  const v = env[CHECKPOINT_KEY_ENV];
  if (v === undefined || v.trim() === '') return undefined;
  return CheckpointKeys.parse(v);
}
