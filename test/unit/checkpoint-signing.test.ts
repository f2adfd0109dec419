// Signed checkpoints: keys from DURABLE_TRAIN_CHECKPOINT_KEY, an HMAC over each manifest's canonical form, and a
// manager that refuses (never skips like damage) a manifest whose signature is missing, unknown or wrong, even
// when the forger made every content hash consistent.
import * as assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import {
  canonicalManifest,
  CheckpointCorruptError,
  checkpointId,
  CheckpointKeys,
  checkpointKeysFromEnv,
  CheckpointManager,
  CheckpointSignatureError,
  FsCheckpointStore,
  manifestBodyHash,
  sha256Hex,
  type CommitInput,
  type Manifest,
} from '../../checkpoint';

const RUN = 'signed-run';
const b64 = (bytes = 32) => randomBytes(bytes).toString('base64');

function input(step: number, fill = step): CommitInput {
  return {
    step,
    epoch: step / 10,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
    parent: null,
    blobs: [{ name: 'dense/kernel', dtype: 'float32', shape: [2, 2], data: new Uint8Array(16).fill(fill) }],
    state: { rng: [step, 2, 3], data: { position: step } },
    metrics: { loss: 1 / (step + 1) },
    fingerprints: { spec: 'abc' },
    backend: { name: 'cpu', version: '4' },
    reason: 'chunk-end',
  };
}

describe('checkpoint signing', function () {
  describe('keys (DURABLE_TRAIN_CHECKPOINT_KEY = id=base64key[,id2=base64key2])', function () {
    it('parses ids in order, the first signs; unset or empty means signing off', function () {
      const keys = CheckpointKeys.parse(` k2=${b64()} , k1=${b64(48)}`);
      assert.deepEqual(keys.ids, ['k2', 'k1']);
      assert.equal(keys.signingKeyId, 'k2');
      assert.equal(checkpointKeysFromEnv({}), undefined);
      assert.equal(checkpointKeysFromEnv({ DURABLE_TRAIN_CHECKPOINT_KEY: '  ' }), undefined);
      assert.deepEqual(checkpointKeysFromEnv({ DURABLE_TRAIN_CHECKPOINT_KEY: `a=${b64()}` })?.ids, ['a']);
    });

    it('refuses malformed settings with a message naming the entry, never the key', function () {
      const secret = b64(8);
      const cases: Array<[string, RegExp]> = [
        ['', /entry 1 is empty/],
        [`k1=${b64()},`, /entry 2 is empty/],
        [secret, /entry 1 has no key id/],
        [secret.replace(/=+$/, ''), /entry 1 has no key id/],
        [`k1=`, /entry 1 has no key id or no key/],
        [`=${b64()}`, /entry 1 has no key id/],
        [`../k=${b64()}`, /key id "\.\.\/k" is not 1-64/],
        ['k1=not base64!', /\(key k1\): the key is not base64/],
        [`k1=${secret}`, /\(key k1\): the key is 8 bytes, at least 32 are needed/],
        [`k1=${b64()},k1=${b64()}`, /key id k1 is given twice/],
      ];
      for (const [text, re] of cases) {
        assert.throws(
          () => CheckpointKeys.parse(text),
          (err: Error) => {
            assert.match(err.message, /^DURABLE_TRAIN_CHECKPOINT_KEY/);
            assert.match(err.message, re);
            assert.ok(!err.message.includes(secret), err.message);
            return true;
          },
        );
      }
    });

    it('each refusal word for word, at the edges of the id and key rules', function () {
      const key = (n = 32) => new Uint8Array(n).fill(7);
      const refuses = (make: () => unknown, message: string) =>
        assert.throws(make, (err: Error) => err.message === message, message);
      refuses(() => new CheckpointKeys([]), 'checkpoint keys: at least one key is needed');
      const idRule = 'use 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric';
      for (const id of ['', '-a', '.a', 'a'.repeat(65), 'a b', 'a/b'])
        refuses(() => new CheckpointKeys([{ id, key: key() }]), `checkpoint key id ${JSON.stringify(id)}: ${idRule}`);
      refuses(() => new CheckpointKeys([{ id: 7 as unknown as string, key: key() }]), `checkpoint key id 7: ${idRule}`);
      assert.deepEqual(
        new CheckpointKeys([
          { id: 'a'.repeat(64), key: key() },
          { id: '9.b_c-D', key: key(33) },
        ]).ids,
        ['a'.repeat(64), '9.b_c-D'],
      );
      refuses(
        () =>
          new CheckpointKeys([
            { id: 'k', key: key() },
            { id: 'k', key: key() },
          ]),
        'checkpoint key id k is given twice',
      );
      const short = 'checkpoint key k is too short: at least 32 bytes (openssl rand -base64 32)';
      refuses(() => new CheckpointKeys([{ id: 'k', key: key(31) }]), short);
      refuses(() => new CheckpointKeys([{ id: 'k', key: Array.from(key()) as unknown as Uint8Array }]), short);

      const use = 'use id=base64key[,id2=base64key2]';
      refuses(() => CheckpointKeys.parse('', 'KEYS'), `KEYS entry 1 is empty: ${use}`);
      refuses(() => CheckpointKeys.parse(`a=${b64()}, `), `DURABLE_TRAIN_CHECKPOINT_KEY entry 2 is empty: ${use}`);
      refuses(() => CheckpointKeys.parse(`=${b64()}`), `DURABLE_TRAIN_CHECKPOINT_KEY entry 1 has no key id: ${use}`);
      refuses(() => CheckpointKeys.parse('abc'), `DURABLE_TRAIN_CHECKPOINT_KEY entry 1 has no key id: ${use}`);
      refuses(
        () => CheckpointKeys.parse('k1 = =='),
        `DURABLE_TRAIN_CHECKPOINT_KEY entry 1 has no key id or no key: ${use}`,
      );
      refuses(
        () => CheckpointKeys.parse(`-k=${b64()}`),
        `DURABLE_TRAIN_CHECKPOINT_KEY entry 1: key id "-k" is not 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric`,
      );
      for (const bad of ['a===', 'ab=c', 'a', `${b64()}!`, `${b64()} x`])
        refuses(
          () => CheckpointKeys.parse(`k1=${bad}`),
          'DURABLE_TRAIN_CHECKPOINT_KEY entry 1 (key k1): the key is not base64',
        );
      refuses(
        () => CheckpointKeys.parse(`k1=${b64(31)}`),
        'DURABLE_TRAIN_CHECKPOINT_KEY entry 1 (key k1): the key is 31 bytes, at least 32 are needed (make one with: openssl rand -base64 32)',
      );
      refuses(() => CheckpointKeys.parse(`k1=${b64()},k1=${b64()}`, 'SRC'), 'SRC: checkpoint key id k1 is given twice');
      // Padded, unpadded and spaced forms all parse; the key is the decoded bytes.
      const raw = new Uint8Array(34).map((_, i) => i * 5);
      const text = Buffer.from(raw).toString('base64');
      for (const form of [text, text.replace(/=+$/, ''), ` ${text} `]) {
        const keys = CheckpointKeys.parse(` k1 =${form}`);
        assert.deepEqual(keys.ids, ['k1']);
        assert.deepEqual(
          keys.sign(signedFixture()),
          new CheckpointKeys([{ id: 'k1', key: raw }]).sign(signedFixture()),
        );
      }
      assert.equal(checkpointKeysFromEnv({ DURABLE_TRAIN_CHECKPOINT_KEY: '' }), undefined);
      assert.deepEqual(JSON.parse(JSON.stringify(CheckpointKeys.parse(`a=${b64()},b=${b64()}`))), { ids: ['a', 'b'] });
    });

    it('problem(): missing, unknown key, a signature that is not the 64 hex digits of the HMAC, or null', function () {
      const raw = new Uint8Array(32).fill(3);
      const keys = new CheckpointKeys([
        { id: 'k1', key: raw },
        { id: 'k0', key: new Uint8Array(32).fill(4) },
      ]);
      const m = signedFixture();
      const mac = createHmac('sha256', raw).update(canonicalManifest(m), 'utf8').digest('hex');
      assert.deepEqual(keys.sign(m), { keyId: 'k1', hmacSha256: mac });
      assert.deepEqual(keys.sign({ ...m, signature: { keyId: 'x', hmacSha256: 'y' } }), {
        keyId: 'k1',
        hmacSha256: mac,
      });
      assert.equal(canonicalManifest({ ...m, signature: { keyId: 'x', hmacSha256: 'y' } }), canonicalManifest(m));
      assert.equal(keys.problem({ ...m, signature: { keyId: 'k1', hmacSha256: mac } }), null);
      assert.deepEqual(keys.problem(m), { kind: 'missing', text: 'is not signed' });
      assert.deepEqual(keys.problem({ ...m, signature: { keyId: 'k9', hmacSha256: mac } }), {
        kind: 'unknown-key',
        text: `is signed with key "k9", which is not among this process's keys (k1, k0)`,
      });
      const mismatch = { kind: 'mismatch', text: 'has a signature that does not match its content (key k1)' };
      for (const hmacSha256 of [
        mac.toUpperCase(),
        mac.slice(0, 62),
        `${mac}00`,
        ` ${mac}`,
        `${mac.slice(0, 63)}${mac[63] === '0' ? '1' : '0'}`,
      ])
        assert.deepEqual(keys.problem({ ...m, signature: { keyId: 'k1', hmacSha256 } }), mismatch, hmacSha256);
      assert.deepEqual(keys.problem({ ...m, signature: { keyId: 'k0', hmacSha256: mac } }), {
        kind: 'mismatch',
        text: 'has a signature that does not match its content (key k0)',
      });
    });

    it('never shows key bytes in JSON or inspect output', function () {
      const raw = randomBytes(32);
      const keys = new CheckpointKeys([{ id: 'k1', key: raw }]);
      for (const shown of [JSON.stringify(keys), inspect(keys, { depth: 5, showHidden: true })]) {
        assert.ok(!shown.includes(raw.toString('base64')) && !shown.includes(raw.toString('hex')), shown);
        assert.match(shown, /k1/);
      }
    });
  });

  describe('manager', function () {
    let root: string;
    let store: FsCheckpointStore;
    const raw1 = randomBytes(32);
    const raw2 = randomBytes(32);
    const k1 = new CheckpointKeys([{ id: 'k1', key: raw1 }]);
    const mgr = (keys?: CheckpointKeys) => new CheckpointManager(store, RUN, { keys, blobGcGraceMs: 0 });
    const file = (id: string) => path.join(root, RUN, 'manifests', `${id}.json`);
    const readJson = (id: string) => JSON.parse(fs.readFileSync(file(id), 'utf8')) as Manifest;

    /**
     * What an attacker with write access but without the key does: edits a manifest, points it at a blob of its
     * own, makes every content hash and the id consistent again, and replaces the original.
     */
    function forge(id: string, edit: (m: Manifest) => void): string {
      const m = readJson(id);
      const evil = new Uint8Array(m.blobs[0].size).fill(0xee);
      const sha = sha256Hex(evil);
      fs.writeFileSync(path.join(root, RUN, 'blobs', sha), evil);
      m.blobs[0].sha256 = sha;
      edit(m);
      const forged: Manifest = { ...m, id: checkpointId(m.step, manifestBodyHash(m)) };
      fs.unlinkSync(file(id));
      fs.writeFileSync(file(forged.id), JSON.stringify(forged, null, 1));
      return forged.id;
    }

    beforeEach(function () {
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-signed-'));
      store = new FsCheckpointStore(root);
    });
    afterEach(function () {
      fs.rmSync(root, { recursive: true, force: true });
    });

    it('signs every commit (key id + HMAC over the canonical form); the id is the unsigned one', async function () {
      const signed = await mgr(k1).commit(input(10));
      assert.equal(signed.signature?.keyId, 'k1');
      assert.match(signed.signature!.hmacSha256, /^[0-9a-f]{64}$/);
      assert.deepEqual(readJson(signed.id).signature, signed.signature);
      assert.ok(!canonicalManifest(signed).includes('signature'));
      const other = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-unsigned-'));
      const plain = await new CheckpointManager(new FsCheckpointStore(other), RUN).commit(input(10));
      assert.equal(plain.id, signed.id);
      assert.equal(plain.signature, undefined);
      fs.rmSync(other, { recursive: true, force: true });

      const m = mgr(k1);
      assert.equal((await m.load(signed.id)).manifest.id, signed.id);
      assert.equal((await m.verify(signed.id)).ok, true);
      assert.equal((await m.latestValid())?.manifest.id, signed.id);
      // Signing is optional: a process without keys reads signed checkpoints like any other.
      assert.equal((await mgr().load(signed.id)).manifest.id, signed.id);
    });

    it('refuses a manifest edited and re-hashed without the key, naming it, and never falls back past it', async function () {
      const older = await mgr(k1).commit(input(10));
      const newest = await mgr(k1).commit(input(20));
      const forgedId = forge(newest.id, (m) => (m.metrics.loss = 0.0001));
      // Every content hash agrees: without keys it is a perfectly valid checkpoint.
      assert.equal((await mgr().verify(forgedId)).ok, true);

      const m = mgr(k1);
      const refused = (err: unknown) => {
        assert.ok(err instanceof CheckpointSignatureError, String(err));
        assert.equal(err.kind, 'mismatch');
        assert.equal(err.checkpointId, forgedId);
        assert.match(err.message, new RegExp(`^checkpoint ${RUN}:${forgedId} has a signature that does not match`));
        assert.match(err.message, /signature check, not damage/);
        return true;
      };
      await assert.rejects(m.load(forgedId), refused);
      await assert.rejects(m.readManifest(forgedId), refused);
      await assert.rejects(m.verify(forgedId), refused);
      // The newest checkpoint is forged: refuse outright, do not quietly resume from the older one.
      await assert.rejects(m.latestValid(), refused);

      const row = (await m.list()).find((c) => c.id === forgedId)!;
      assert.equal(row.valid, false);
      assert.equal(row.untrusted, true);
      assert.match(row.problem!, /does not match/);
      // Retention neither counts it as the newest valid checkpoint nor deletes it (it is evidence).
      const res = await m.applyRetention({ keepLatest: 1 });
      assert.deepEqual(res.kept, [older.id, forgedId].sort());
      assert.deepEqual(res.deleted, []);
      // The older checkpoint is still loadable by id (fork or export it explicitly).
      assert.equal((await m.load(older.id)).manifest.step, 10);
    });

    it('refuses a forged manifest that kept a signature copied from elsewhere, or dropped it', async function () {
      const a = await mgr(k1).commit(input(10));
      const b = await mgr(k1).commit(input(20));
      const sigOfA = readJson(a.id).signature!;
      const withCopied = forge(b.id, (m) => (m.signature = sigOfA));
      await assert.rejects(mgr(k1).load(withCopied), /has a signature that does not match its content \(key k1\)/);
      const c = await mgr(k1).commit(input(30));
      const stripped = forge(c.id, (m) => delete m.signature);
      await assert.rejects(mgr(k1).load(stripped), (err: CheckpointSignatureError) => {
        assert.equal(err.kind, 'missing');
        assert.match(err.message, /is not signed: refused .*this one was written without the key: investigate/);
        assert.doesNotMatch(err.message, /checkpoints sign/);
        return true;
      });
      // Signing never launders it: refused (newer than the newest signed one, in a signed run), unless checked.
      await assert.rejects(mgr(k1).sign(stripped), (err: CheckpointSignatureError) => {
        assert.equal(err.kind, 'forged');
        assert.match(
          err.message,
          /is unsigned \(step 30\) in a run whose other checkpoints are signed \(newest signed: /,
        );
        assert.doesNotMatch(err.message, /checkpoints sign/);
        return true;
      });
      assert.equal(readJson(stripped).signature, undefined);
      assert.equal(await mgr(k1).sign(stripped, { checked: true }), 'signed');
    });

    it('a malformed signature field is damage (structure), not a signature to judge', async function () {
      const a = await mgr(k1).commit(input(10));
      const m = readJson(a.id) as unknown as Record<string, unknown>;
      m.signature = 'k1:abc';
      fs.writeFileSync(file(a.id), JSON.stringify(m));
      await assert.rejects(mgr(k1).load(a.id), (err: Error) => {
        assert.ok(err instanceof CheckpointCorruptError);
        assert.match(err.message, /signature is not \{keyId, hmacSha256\}/);
        return true;
      });
    });

    it('unsigned checkpoints are refused with keys set until signed, after a full check', async function () {
      const a = await mgr().commit(input(10));
      const b = await mgr().commit(input(20));
      await assert.rejects(mgr(k1).latestValid(), (err: CheckpointSignatureError) => err.kind === 'missing');
      // A damaged checkpoint is not vouched for.
      fs.writeFileSync(path.join(root, RUN, 'blobs', b.blobs[0].sha256), new Uint8Array(16).fill(7));
      await assert.rejects(mgr(k1).sign(b.id), CheckpointCorruptError);
      assert.equal(readJson(b.id).signature, undefined);
      fs.writeFileSync(path.join(root, RUN, 'blobs', b.blobs[0].sha256), new Uint8Array(16).fill(20));

      // A run signed for the first time is signed as one batch (as `checkpoints sign RUN_ID` does).
      const signedBefore = await mgr(k1).signedIds();
      assert.equal(await mgr(k1).sign(a.id, { signedBefore }), 'signed');
      assert.equal(await mgr(k1).sign(b.id, { signedBefore }), 'signed');
      assert.equal(await mgr(k1).sign(b.id), 'already signed');
      assert.equal((await mgr(k1).latestValid())?.manifest.id, b.id);
      assert.equal((await mgr(k1).load(a.id)).manifest.id, a.id);
      await assert.rejects(mgr().sign(a.id), /no checkpoint keys given/);
    });

    it('sign(): the forged refusal names the newest signed checkpoint; re-signing with a new key; a mismatch is refused', async function () {
      const a = await mgr(k1).commit(input(30));
      const b = await mgr(k1).commit(input(20));
      const c = await mgr(k1).commit(input(10));
      const late = await mgr().commit(input(40));
      await assert.rejects(mgr(k1).sign(late.id), (err: Error) => {
        assert.ok(err instanceof CheckpointSignatureError);
        assert.equal(err.kind, 'forged');
        assert.ok(
          err.message.startsWith(
            `checkpoint ${RUN}:${late.id} is unsigned (step 40) in a run whose other checkpoints are signed (newest ` +
              `signed: ${a.id} at step 30): it was written without the key, so it is not signed: refused (signature ` +
              'check, not damage). Investigate the store',
          ),
          err.message,
        );
        return true;
      });
      // Signed before the batch: only b; the others do not count, so the refusal names b.
      await assert.rejects(mgr(k1).sign(late.id, { signedBefore: new Set([b.id, late.id]) }), (err: Error) =>
        err.message.includes(`(newest signed: ${b.id} at step 20)`),
      );
      assert.equal(await mgr(k1).sign(late.id, { signedBefore: new Set([late.id]) }), 'signed');
      assert.equal(readJson(late.id).signature?.keyId, 'k1');
      const both = new CheckpointKeys([
        { id: 'k2', key: raw2 },
        { id: 'k1', key: raw1 },
      ]);
      assert.equal(await mgr(both).sign(c.id), 're-signed');
      assert.equal(readJson(c.id).signature?.keyId, 'k2');
      assert.equal(await mgr(both).sign(c.id), 'already signed');
      const m = readJson(b.id);
      m.signature!.hmacSha256 = m.signature!.hmacSha256.replace(/^./, (ch) => (ch === '0' ? '1' : '0'));
      fs.writeFileSync(file(b.id), JSON.stringify(m));
      await assert.rejects(
        mgr(both).sign(b.id),
        (err: Error) => err instanceof CheckpointSignatureError && err.kind === 'mismatch',
      );
      await assert.rejects(mgr().sign(b.id), {
        message: 'checkpoint sign: no checkpoint keys given (set DURABLE_TRAIN_CHECKPOINT_KEY)',
      });
      assert.deepEqual([...(await mgr(both).signedIds())].sort(), [a.id, c.id, late.id].sort());
      assert.deepEqual([...(await mgr(k1).signedIds())].sort(), [a.id, late.id].sort());
      assert.deepEqual(mgr(both).signing, ['k2', 'k1']);
    });

    it('rotation: new keys first, old ones still verify; a process without the signing key refuses', async function () {
      const k2 = new CheckpointKeys([{ id: 'k2', key: raw2 }]);
      const wrongK2 = new CheckpointKeys([{ id: 'k2', key: randomBytes(32) }]); // same id, other bytes
      const both = CheckpointKeys.parse(`k2=${raw2.toString('base64')},k1=${raw1.toString('base64')}`);
      const old = await mgr(k1).commit(input(10));
      const fresh = await mgr(both).commit(input(20));
      assert.equal(fresh.signature?.keyId, 'k2');
      assert.equal((await mgr(both).load(old.id)).manifest.id, old.id);
      assert.equal((await mgr(both).latestValid())?.manifest.id, fresh.id);
      await assert.rejects(mgr(k1).latestValid(), (err: CheckpointSignatureError) => {
        assert.equal(err.kind, 'unknown-key');
        assert.match(err.message, /is signed with key "k2", which is not among this process's keys \(k1\)/);
        return true;
      });
      await assert.rejects(mgr(wrongK2).load(fresh.id), (err: CheckpointSignatureError) => err.kind === 'mismatch');
      // Before retiring k1: re-sign its checkpoints with k2.
      assert.equal(await mgr(both).sign(old.id), 're-signed');
      assert.equal((await mgr(k2).load(old.id)).manifest.signature?.keyId, 'k2');
      assert.equal((await mgr(k2).latestValid())?.manifest.id, fresh.id);
      // A checkpoint signed with a key the signer does not hold is not re-signed blindly.
      await assert.rejects(mgr(k1).sign(fresh.id), CheckpointSignatureError);
    });
  });
});

/** A small manifest to sign (its blobs are never read). */
function signedFixture(): Manifest {
  const body: Omit<Manifest, 'id'> = {
    formatVersion: 1,
    runId: RUN,
    step: 3,
    epoch: 0,
    createdAt: '2026-01-01T00:00:03.000Z',
    parent: null,
    blobs: [{ name: 'w', dtype: 'float32', shape: [1], sha256: 'a'.repeat(64), size: 4 }],
    state: null,
    metrics: {},
    fingerprints: {},
    backend: { name: 'cpu', version: '4' },
  };
  return { ...body, id: checkpointId(body.step, manifestBodyHash(body)) };
}
