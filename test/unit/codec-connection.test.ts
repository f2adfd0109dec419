// The AES-256-GCM payload codec and the connection settings, in process: formats, rotation, tampering, messages.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Payload } from '@temporalio/common';
import { AesGcmPayloadCodec, CodecKeyError, codecFromEnv, parseCodecKeys } from '../../codec';
import { CliError } from '../../cli/common';
import { temporalSettings } from '../../cli/connection';

const b64 = () => randomBytes(32).toString('base64');
const json = (v: unknown): Payload => ({
  metadata: { encoding: new Uint8Array(Buffer.from('json/plain')) },
  data: new Uint8Array(Buffer.from(JSON.stringify(v))),
});
const text = (p: Payload) => Buffer.from(p.data!).toString('utf8');

describe('AES-256-GCM payload codec', function () {
  const a = b64();
  const b = b64();

  it('encrypts (fresh IV each time) and decrypts back to the same payload', async function () {
    const codec = codecFromEnv({ DURABLE_TRAIN_CODEC_KEYS: `a=${a}` });
    const p = json({ learningRate: 0.0031337 });
    const [e1, e2] = await codec.encode([p, p]);
    assert.ok(!Buffer.from(e1.data!).includes('0.0031337'));
    assert.notDeepEqual(e1.data, e2.data);
    assert.equal(Buffer.from(e1.metadata!.encoding!).toString(), 'binary/encrypted');
    assert.equal(Buffer.from(e1.metadata!['encryption-key-id']!).toString(), 'a');
    const [d] = await codec.decode([e1]);
    assert.equal(text(d), text(p));
    assert.equal(Buffer.from(d.metadata!.encoding!).toString(), 'json/plain');
  });

  it('rotates: the first key encrypts, every key decrypts; unknown ids are named', async function () {
    const old = new AesGcmPayloadCodec(parseCodecKeys(`a=${a}`));
    const rotated = new AesGcmPayloadCodec(parseCodecKeys(`b=${b},a=${a}`));
    const [fromOld] = await old.encode([json(1)]);
    assert.equal(text((await rotated.decode([fromOld]))[0]), '1');
    const [fromNew] = await rotated.encode([json(2)]);
    assert.equal(Buffer.from(fromNew.metadata!['encryption-key-id']!).toString(), 'b');
    await assert.rejects(
      old.decode([fromNew]),
      /key id "b", which DURABLE_TRAIN_CODEC_KEYS does not hold \(it holds "a"\)/,
    );
    await assert.rejects(new AesGcmPayloadCodec([]).decode([fromNew]), /DURABLE_TRAIN_CODEC_KEYS is not set/);
  });

  it('refuses altered payloads, a relabelled key id and the wrong key for an id', async function () {
    const codec = new AesGcmPayloadCodec(parseCodecKeys(`a=${a},b=${b}`));
    const [e] = await codec.encode([json({ x: 1 })]);
    const flipped = Buffer.from(e.data!);
    flipped[flipped.length - 1] ^= 1;
    await assert.rejects(codec.decode([{ ...e, data: new Uint8Array(flipped) }]), CodecKeyError);
    const relabelled = { ...e, metadata: { ...e.metadata, 'encryption-key-id': new Uint8Array(Buffer.from('b')) } };
    await assert.rejects(codec.decode([relabelled]), /key id "b"\) failed to decrypt/);
    const wrong = new AesGcmPayloadCodec(parseCodecKeys(`a=${b}`));
    await assert.rejects(wrong.decode([e]), /key id "a"\) failed to decrypt/);
  });

  it('passes unencrypted payloads through, and a keyless codec sends them as they are', async function () {
    const codec = new AesGcmPayloadCodec(parseCodecKeys(`a=${a}`));
    const p = json('plain');
    assert.deepEqual(await codec.decode([p]), [p]);
    assert.deepEqual(await new AesGcmPayloadCodec([]).encode([p]), [p]);
  });

  it('refuses malformed key lists naming the entry, never echoing a key', function () {
    const short = randomBytes(16).toString('base64');
    const cases: Array<[string, RegExp]> = [
      [' , ', /is empty/],
      [`${a}`, /entry 1: expected id=base64key/],
      [`-x=${a}`, /entry 1: key id must be/],
      [`a=${a},b=${short}`, /entry 2 \(key id "b"\): the key must be 32 bytes in base64 .*got 16 bytes/],
      [`a=${a},b=not base64!`, /entry 2 \(key id "b"\).*got no valid base64/],
      [`a=${a},a=${b}`, /key id "a" appears twice/],
    ];
    for (const [value, message] of cases) {
      assert.throws(
        () => parseCodecKeys(value),
        (err: Error) => {
          assert.ok(err instanceof CodecKeyError);
          assert.match(err.message, message);
          for (const k of [a, b, short]) assert.ok(!err.message.includes(k), 'no key in the message');
          return true;
        },
      );
    }
  });
});

describe('connection settings (@temporalio/envconfig profiles and variables)', function () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-conn-'));
  const toml = path.join(dir, 'temporal.toml');
  fs.writeFileSync(
    toml,
    [
      '[profile.default]',
      'address = "dev.example:7233"',
      '[profile.cloud]',
      'address = "ns.acct.tmprl.cloud:7233"',
      'namespace = "ns.acct"',
      'api_key = "cloud-key-1"',
      '[profile.mtls.tls]',
      `client_cert_path = "${path.join(dir, 'missing.crt')}"`,
      `client_key_path = "${path.join(dir, 'missing.key')}"`,
      '',
    ].join('\n'),
  );
  const none = { TEMPORAL_CONFIG_FILE: path.join(dir, 'none.toml') };

  it('defaults to the embedded dev server, plain text, with the keyless codec', function () {
    const s = temporalSettings(none);
    assert.equal(s.address, 'localhost:7233');
    assert.equal(s.namespace, 'default');
    assert.equal(s.embedded, true);
    assert.equal(s.tls, undefined);
    assert.equal(s.uiUrl, 'http://localhost:8233');
  });

  it('reads a profile; the API key turns TLS on; variables override the profile', function () {
    const cloud = temporalSettings({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'cloud' });
    assert.equal(cloud.address, 'ns.acct.tmprl.cloud:7233');
    assert.equal(cloud.namespace, 'ns.acct');
    assert.equal(cloud.apiKey, 'cloud-key-1');
    assert.equal(cloud.tls, true);
    assert.equal(cloud.embedded, false);
    const over = temporalSettings({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_ADDRESS: 'other:1', TEMPORAL_TLS: 'false' });
    assert.equal(over.address, 'other:1');
    assert.equal(over.tls, false);
  });

  it('names the missing profile and the unreadable certificate file with where it was set', function () {
    assert.throws(
      () => temporalSettings({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'nope' }),
      (err: Error) => err instanceof CliError && /Profile 'nope' not found/.test(err.message),
    );
    assert.throws(
      () => temporalSettings({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'mtls' }),
      (err: Error) =>
        err instanceof CliError &&
        /cannot read the TLS client certificate file .*missing\.crt \(tls\.client_cert_\* in profile "mtls"/.test(
          err.message,
        ) &&
        err.exitCode === 2,
    );
    assert.throws(
      () => temporalSettings({ ...none, DURABLE_TRAIN_CODEC_KEYS: 'a=short' }),
      (err: Error) => err instanceof CliError && /DURABLE_TRAIN_CODEC_KEYS entry 1/.test(err.message),
    );
  });
});
