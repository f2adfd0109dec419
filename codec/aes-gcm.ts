// A Temporal payload codec: AES-256-GCM with key ids, so keys rotate without losing old runs. Every payload the
// client or the worker sends (workflow input, memo, activity input and result, heartbeat details, query answers) is
// encrypted with the first key; any key held decrypts. Workflows never see it (the SDK applies codecs outside the
// sandbox). Knows nothing of the CLI: the client, the worker and the codec server share it.
import { DurableTrainError } from '../spec/errors';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';

/** The `encoding` metadata of an encrypted payload (what the Web UI shows without a codec endpoint). */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
export const CIPHER_METADATA = 'encryption-cipher';
const CIPHER = 'AES-256-GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const CODEC_KEYS_ENV = 'DURABLE_TRAIN_CODEC_KEYS';

/** Bad codec configuration, or a payload no key held can open. Messages name key ids, never key bytes. */
export class CodecKeyError extends DurableTrainError {
  readonly code = 'invalid' as const;

  override name = 'CodecKeyError';
}

export interface CodecKey {
  id: string;
  key: Buffer;
}

/**
 * Parses `id=base64key,id2=base64key2` (the first encrypts, all decrypt). Each key is 32 random bytes in base64
 * (`openssl rand -base64 32`). Errors say which entry is wrong and never echo a key.
 */
export function parseCodecKeys(text: string, source = CODEC_KEYS_ENV): CodecKey[] {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) throw new CodecKeyError(`${source} is empty: expected id=base64key[,id2=base64key2...]`);
  const keys: CodecKey[] = [];
  entries.forEach((entry, i) => {
    const eq = entry.indexOf('=');
    const where = `${source} entry ${i + 1}`;
    const id = entry.slice(0, eq).trim();
    const b64 = entry.slice(eq + 1).trim();
    // A bare key ("abc...=") splits at its padding: say so without echoing the would-be id, which is the key.
    if (eq <= 0 || /^=*$/.test(b64))
      throw new CodecKeyError(`${where}: expected id=base64key (a key id, '=', then the key in base64)`);
    if (!KEY_ID.test(id))
      throw new CodecKeyError(
        `${where}: key id must be 1-64 letters, digits, '_', '-' or '.', not starting with a sign`,
      );
    if (keys.some((k) => k.id === id)) throw new CodecKeyError(`${where}: key id "${id}" appears twice`);
    const key = /^[A-Za-z0-9+/]+={0,2}$/.test(b64) ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
    if (key.length !== KEY_BYTES)
      throw new CodecKeyError(
        `${where} (key id "${id}"): the key must be ${KEY_BYTES} bytes in base64 (\`openssl rand -base64 32\`), got ${key.length === 0 ? 'no valid base64' : `${key.length} bytes`}`,
      );
    keys.push({ id, key });
  });
  return keys;
}

const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const metaString = (p: Payload, k: string) => {
  const v = p.metadata?.[k];
  return v ? Buffer.from(v).toString('utf8') : undefined;
};

/** The inner payload, serialised: its metadata and data in base64 (JSON, no protobuf dependency). */
function serialise(p: Payload): Buffer {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) if (v) metadata[k] = Buffer.from(v).toString('base64');
  return Buffer.from(JSON.stringify({ metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') }));
}

function deserialise(bytes: Buffer): Payload {
  const o = JSON.parse(bytes.toString('utf8')) as { metadata: Record<string, string>; data: string };
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(o.metadata)) metadata[k] = new Uint8Array(Buffer.from(v, 'base64'));
  return { metadata, data: new Uint8Array(Buffer.from(o.data, 'base64')) };
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;
  /** Null without keys: then payloads go out as they are, and encrypted ones are refused with a clear error. */
  readonly encryptingKeyId: string | null;

  constructor(keys: CodecKey[]) {
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
    this.encryptingKeyId = keys[0]?.id ?? null;
  }

  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const keyId = this.encryptingKeyId;
    if (keyId === null) return payloads;
    const key = this.keys.get(keyId)!;
    return payloads.map((p) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(keyId, 'utf8'));
      const body = Buffer.concat([cipher.update(serialise(p)), cipher.final()]);
      return {
        metadata: {
          encoding: utf8(ENCRYPTED_ENCODING),
          [KEY_ID_METADATA]: utf8(keyId),
          [CIPHER_METADATA]: utf8(CIPHER),
        },
        data: new Uint8Array(Buffer.concat([iv, cipher.getAuthTag(), body])),
      };
    });
  }

  /** Payloads that are not encrypted pass through: runs started before encryption was turned on stay readable. */
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (metaString(p, 'encoding') !== ENCRYPTED_ENCODING) return p;
      const id = metaString(p, KEY_ID_METADATA) ?? '';
      const key = this.keys.get(id);
      if (!key)
        throw new CodecKeyError(
          this.keys.size === 0
            ? `a payload is encrypted (key id "${id}") and ${CODEC_KEYS_ENV} is not set: set it to a list holding key "${id}" to read it`
            : `a payload is encrypted with key id "${id}", which ${CODEC_KEYS_ENV} does not hold (it holds ${this.keyIds.map((k) => `"${k}"`).join(', ')}): add that key to decrypt it`,
        );
      const data = Buffer.from(p.data ?? new Uint8Array());
      if (data.length < IV_BYTES + TAG_BYTES)
        throw new CodecKeyError(`an encrypted payload (key id "${id}") is truncated`);
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
        decipher.setAAD(Buffer.from(id, 'utf8'));
        decipher.setAuthTag(data.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
        const plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
        return deserialise(plain);
      } catch {
        throw new CodecKeyError(
          `an encrypted payload (key id "${id}") failed to decrypt: the key given for "${id}" is not the one it was encrypted with, or the payload was altered`,
        );
      }
    });
  }
}

/**
 * The codec DURABLE_TRAIN_CODEC_KEYS asks for. Unset: a codec without keys, which sends payloads as plain JSON and
 * refuses encrypted ones with an error saying the key is missing (instead of the SDK's "unknown encoding").
 */
export function codecFromEnv(env: NodeJS.ProcessEnv = process.env): AesGcmPayloadCodec {
  const text = env[CODEC_KEYS_ENV];
  if (text === undefined || text.trim() === '') return new AesGcmPayloadCodec([]);
  return new AesGcmPayloadCodec(parseCodecKeys(text));
}
