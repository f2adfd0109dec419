// Untrusted manifests, generated (fast-check): whatever bytes sit in a manifest file, decoding either gives a
// manifest or refuses with an Error that says what is wrong (never a TypeError or RangeError from inside, never a
// hang); absurd claims (a 2^40-byte blob, a huge shape, deep nesting) are refused before anything is allocated for
// them; and through the manager, a hostile manifest is a damaged checkpoint, never a crash or a storage outage.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import {
  canonicalJson,
  CheckpointCorruptError,
  checkpointId,
  CheckpointManager,
  FsCheckpointStore,
  manifestBodyHash,
  NoValidCheckpointError,
  type Manifest,
} from '../../checkpoint';
import { decodeManifest, encodeManifest, stepFromId } from '../../checkpoint/codec';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

const valid: Manifest = (() => {
  const body: Omit<Manifest, 'id'> = {
    formatVersion: 1,
    runId: 'run',
    step: 12,
    epoch: 1.5,
    createdAt: '2026-01-01T00:00:00.000Z',
    reason: 'chunk-end',
    parent: { runId: 'src', id: 'step-000000004-0123abcd' },
    metrics: { loss: 0.5, accuracy: 0.9 },
    fingerprints: { spec: 'abc' },
    backend: { name: 'wasm', version: '4.22.0' },
    blobs: [
      { name: 'dense/kernel', dtype: 'float32', shape: [2, 3], sha256: 'a'.repeat(64), size: 24 },
      { name: 'opt/m', dtype: 'string', shape: [1], sha256: 'b'.repeat(64), size: 7 },
    ],
    state: { rng: [1, 2, 3], schedule: { overrides: [] } },
  };
  return { ...body, id: checkpointId(body.step, manifestBodyHash(body)) };
})();

/** The answer of decodeManifest, checked: a manifest, or a plain Error with a short message. */
function decode(bytes: Uint8Array, id: string): Manifest | Error {
  try {
    return decodeManifest(bytes, id);
  } catch (err) {
    assert.ok(err instanceof Error, String(err));
    assert.ok(!(err instanceof TypeError) && !(err instanceof RangeError), err.stack);
    assert.ok(err.message.length > 0 && err.message.length < 2_000, err.message.slice(0, 300));
    return err;
  }
}

/** `m` with the value at `p` replaced (or removed), and its id recomputed so only the field itself is judged. */
function mutate(p: string[], value: unknown, remove: boolean): { bytes: Uint8Array; id: string } {
  const m = JSON.parse(JSON.stringify(valid)) as Record<string, unknown>;
  let cur = m;
  for (const k of p.slice(0, -1)) cur = cur[k] as Record<string, unknown>;
  const last = p[p.length - 1];
  if (remove) delete cur[last];
  else Object.defineProperty(cur, last, { value, enumerable: true, writable: true, configurable: true });
  let id = valid.id;
  try {
    const step = typeof m.step === 'number' && Number.isSafeInteger(m.step) && m.step >= 0 ? m.step : 0;
    id = checkpointId(step, manifestBodyHash(m as unknown as Manifest));
    m.id = id;
  } catch {
    // a value canonical JSON cannot hash: the decoder must refuse it on its own
  }
  return { bytes: enc(m), id };
}

const PATHS: string[][] = [
  ['formatVersion'],
  ['id'],
  ['runId'],
  ['step'],
  ['epoch'],
  ['createdAt'],
  ['reason'],
  ['parent'],
  ['parent', 'runId'],
  ['metrics'],
  ['metrics', 'loss'],
  ['fingerprints'],
  ['fingerprints', 'spec'],
  ['backend'],
  ['backend', 'name'],
  ['blobs'],
  ['blobs', '0'],
  ['blobs', '0', 'name'],
  ['blobs', '0', 'dtype'],
  ['blobs', '0', 'shape'],
  ['blobs', '0', 'shape', '0'],
  ['blobs', '0', 'sha256'],
  ['blobs', '0', 'size'],
  ['blobs', '1', 'shape'],
  ['blobs', '1', 'size'],
  ['state'],
  ['signature'],
  ['__proto__'],
];

const hostile = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    null,
    -1,
    -0,
    0.5,
    2 ** 40,
    2 ** 53,
    1e308,
    '',
    '../../etc/passwd',
    'a'.repeat(100_000),
    [2 ** 20, 2 ** 20],
    [2 ** 40],
    new Array(10_000).fill(1),
    { __proto__: null },
    [],
    {},
  ),
);

describe('property: untrusted manifests', function () {
  this.timeout(300_000);

  it('the valid manifest decodes, and re-encodes to itself', function () {
    const m = decodeManifest(encodeManifest(valid), valid.id);
    assert.deepEqual(m, valid);
  });

  it('any bytes: a manifest or an Error, never a crash', function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        assert.ok(decode(bytes, valid.id) instanceof Error);
      }),
      { numRuns: 1000 },
    );
  });

  it('any JSON value: a manifest or an Error', function () {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        decode(enc(v), valid.id);
      }),
      { numRuns: 1000 },
    );
  });

  it('one field replaced or removed (id re-hashed): decodes, or the error names the field', function () {
    fc.assert(
      fc.property(fc.constantFrom(...PATHS), hostile, fc.boolean(), (p, value, remove) => {
        const { bytes, id } = mutate(p, value, remove);
        const r = decode(bytes, id);
        if (!(r instanceof Error)) {
          // What decodes is what the file says, and hashes to its id.
          assert.equal(checkpointId(r.step, manifestBodyHash(r)), id);
          return;
        }
        const names =
          p[0] === 'blobs' ? /blob|manifest field blobs/ : new RegExp(`${p[p.length - 1]}|${p[0]}|content|id|state`);
        assert.match(r.message, names, `${p.join('.')}: ${r.message}`);
      }),
      { numRuns: 3000 },
    );
  });

  it('absurd sizes and shapes are refused by the decoder itself (regression: 2^40 bytes used to pass)', function () {
    const withBlob = (b: Partial<Manifest['blobs'][0]>) => {
      const m = JSON.parse(JSON.stringify(valid)) as Manifest;
      Object.assign(m.blobs[0], b);
      const id = checkpointId(m.step, manifestBodyHash(m));
      return decode(enc({ ...m, id }), id);
    };
    const refused: Array<[Partial<Manifest['blobs'][0]>, RegExp]> = [
      [{ dtype: 'uint8', shape: [2 ** 40], size: 2 ** 40 }, /blob dense\/kernel: .*larger than/],
      [{ dtype: 'float32', shape: [2 ** 20, 2 ** 20], size: 2 ** 42 }, /larger than/],
      [{ dtype: 'string', shape: [1], size: 2 ** 40 }, /larger than/],
      [{ dtype: 'float32', shape: [2 ** 30, 2 ** 30, 2 ** 30], size: 8 }, /needs|larger than/],
      [{ dtype: 'float32', shape: new Array(1000).fill(1), size: 4 }, /dimensions/],
      [{ dtype: 'float32', shape: [-1], size: 4 }, /shape/],
    ];
    const long = decode(enc({ ...valid, formatVersion: 'x'.repeat(100_000) }), valid.id);
    assert.ok(long instanceof Error && long.message.length < 200, 'a hostile value is shown cut short');
    for (const [b, re] of refused) {
      const r = withBlob(b);
      assert.ok(r instanceof Error, `${JSON.stringify(b).slice(0, 80)} decoded`);
      assert.match(r.message, re);
    }
  });

  it('state nested deeper than JSON code can walk is refused with a message (regression: RangeError)', async function () {
    const n = 100_000;
    const text = JSON.stringify({ ...valid, state: 'DEEP' }).replace('"DEEP"', '['.repeat(n) + ']'.repeat(n));
    const r = decode(enc(text), valid.id);
    assert.ok(r instanceof Error);
    assert.match(r.message, /state nests deeper than/);
    // And what the decoder refuses can never be committed.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-prop-deep-'));
    const deepState = JSON.parse('['.repeat(300) + ']'.repeat(300)) as unknown;
    const commit = new CheckpointManager(new FsCheckpointStore(root), 'run').commit({
      ...valid,
      blobs: [],
      state: deepState,
    });
    await assert.rejects(commit, /state nests deeper than 256 levels/);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('through the manager: a hostile manifest is a damaged checkpoint, never a crash', async function () {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-prop-manifest-'));
    const mgr = new CheckpointManager(new FsCheckpointStore(root), 'run');
    const dir = path.join(root, 'run', 'manifests');
    try {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...PATHS), hostile, fc.boolean(), async (p, value, remove) => {
          fs.rmSync(dir, { recursive: true, force: true });
          fs.mkdirSync(dir, { recursive: true });
          const { bytes, id } = mutate(p, value, remove);
          const fileId = stepFromId(id) >= 0 ? id : valid.id;
          fs.writeFileSync(path.join(dir, `${fileId}.json`), bytes);
          // Every blob it names is missing: it loads only if it names none (a valid, empty checkpoint).
          const loaded = await mgr.load(fileId).then(
            (l) => l.manifest,
            (err: unknown) => assert.ok(err instanceof CheckpointCorruptError, String(err)),
          );
          if (loaded) {
            assert.equal(loaded.blobs.length, 0);
            return;
          }
          await assert.rejects(mgr.latestValid(), NoValidCheckpointError);
          const [row] = await mgr.list();
          assert.equal(row.id, fileId);
          assert.ok(row.valid === false || (row.valid === null && !(await mgr.verify(fileId)).ok), row.id);
        }),
        { numRuns: 300 },
      );
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

// canonicalJson is what the id and the signature hash: it must not crash on what a decoder lets through.
describe('property: canonical JSON', function () {
  it('is stable under key order and survives a JSON round trip', function () {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        const c = canonicalJson(v);
        assert.equal(canonicalJson(JSON.parse(c)), c);
        assert.equal(canonicalJson(JSON.parse(JSON.stringify(v))), c);
      }),
      { numRuns: 500 },
    );
  });
});
