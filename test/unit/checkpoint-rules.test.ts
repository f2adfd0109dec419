// The checkpoint layer's pure rules, in process and without a store: which checkpoints a retention policy keeps and
// why (and how few it verifies to decide), the policy's checks and their messages, and the manifest codec's
// refusals (each names the field and what is wrong), its canonical JSON, ids and stored form.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CheckpointConflictError,
  CheckpointCorruptError,
  CheckpointKeys,
  CheckpointManager,
  CheckpointNotFoundError,
  CheckpointSignatureError,
  FsCheckpointStore,
  NoValidCheckpointError,
  StorageUnavailableError,
  type CheckpointStore,
  type CommitInput,
  type Manifest,
  type RetentionPolicy,
} from '../../checkpoint';
import {
  assertJson,
  assertSafeName,
  canonicalJson,
  checkpointId,
  decodeManifest,
  encodeManifest,
  expectedSize,
  formatVersionOf,
  manifestBodyHash,
  nestsDeeperThan,
  sha256Hex,
  sha256HexOffThread,
  sha256HexYielding,
  stepFromId,
  validShape,
} from '../../checkpoint/codec';
import {
  hasAnyRule,
  newestFirst,
  selectRetained,
  validatePolicy,
  type RetentionCandidate,
} from '../../checkpoint/retention';
import { commitInput, f32 } from '../helpers/commit-input';

const cand = (id: string, step: number, metrics: Record<string, number> = {}, createdAt = `t${step}`) => ({
  id,
  step,
  createdAt,
  metrics,
});

/** selectRetained's answer as a plain object, and the ids it asked about, in order. */
async function retained(
  candidates: RetentionCandidate[],
  policy: RetentionPolicy,
  damaged: string[] = [],
): Promise<{ keep: Record<string, string[]>; asked: string[] }> {
  const asked: string[] = [];
  const keep = await selectRetained(candidates, policy, async (id) => {
    asked.push(id);
    return !damaged.includes(id);
  });
  return { keep: Object.fromEntries(keep), asked };
}

describe('checkpoint rules: retention', function () {
  it('newestFirst orders by step, then createdAt, then id, all descending, and gives the step difference', function () {
    assert.equal(newestFirst(cand('a', 3), cand('b', 7)), 4);
    assert.equal(newestFirst(cand('a', 7), cand('b', 3)), -4);
    assert.equal(newestFirst(cand('a', 5, {}, '2026-01-02'), cand('b', 5, {}, '2026-01-01')), -1);
    assert.equal(newestFirst(cand('a', 5, {}, '2026-01-01'), cand('b', 5, {}, '2026-01-02')), 1);
    assert.equal(newestFirst(cand('a', 5, {}, 'same'), cand('b', 5, {}, 'same')), 1);
    assert.equal(newestFirst(cand('b', 5, {}, 'same'), cand('a', 5, {}, 'same')), -1);
    assert.equal(newestFirst(cand('a', 5, {}, 'same'), cand('a', 5, {}, 'same')), 0);
    const sorted = [
      cand('x', 2, {}, 'b'),
      cand('y', 9, {}, 'a'),
      cand('a', 2, {}, 'b'),
      cand('z', 2, {}, 'c'),
      cand('q', 1, {}, 'z'),
    ].sort(newestFirst);
    assert.deepEqual(
      sorted.map((c) => c.id),
      ['y', 'z', 'x', 'a', 'q'],
    );
  });

  it('validatePolicy accepts the empty policy, zeros and both modes', function () {
    for (const p of [
      {},
      { keepLatest: 0 },
      { keepLatest: 3, keepEverySteps: 0 },
      { keepEverySteps: 100 },
      { keepBest: { k: 0, metric: 'loss', mode: 'min' } },
      { keepBest: { k: 2, metric: 'accuracy', mode: 'max' } },
    ] as RetentionPolicy[])
      assert.doesNotThrow(() => validatePolicy(p), JSON.stringify(p));
  });

  it('validatePolicy refuses each bad field with a message naming it and the value', function () {
    const refuses = (policy: unknown, message: string) =>
      assert.throws(
        () => validatePolicy(policy as RetentionPolicy),
        (err: Error) => err.message === message,
        `${JSON.stringify(policy)} -> ${message}`,
      );
    refuses({ keepLatest: -1 }, 'retention keepLatest must be a non-negative integer, got -1');
    refuses({ keepLatest: 1.5 }, 'retention keepLatest must be a non-negative integer, got 1.5');
    refuses({ keepLatest: '3' }, 'retention keepLatest must be a non-negative integer, got "3"');
    refuses({ keepLatest: 2 ** 53 }, 'retention keepLatest must be a non-negative integer, got 9007199254740992');
    refuses({ keepLatest: null }, 'retention keepLatest must be a non-negative integer, got null');
    refuses({ keepEverySteps: -5 }, 'retention keepEverySteps must be a non-negative integer, got -5');
    refuses({ keepEverySteps: 2.5 }, 'retention keepEverySteps must be a non-negative integer, got 2.5');
    refuses({ keepEverySteps: '10' }, 'retention keepEverySteps must be a non-negative integer, got "10"');
    refuses(
      { keepBest: { k: -1, metric: 'loss', mode: 'min' } },
      'retention keepBest.k must be a non-negative integer, got -1',
    );
    refuses(
      { keepBest: { k: '2', metric: 'loss', mode: 'min' } },
      'retention keepBest.k must be a non-negative integer, got "2"',
    );
    refuses({ keepBest: { k: 1, metric: '', mode: 'min' } }, 'retention keepBest.metric must be a metric name');
    refuses({ keepBest: { k: 1, metric: 7, mode: 'min' } }, 'retention keepBest.metric must be a metric name');
    refuses({ keepBest: { k: 1, metric: 'loss', mode: 'avg' } }, "retention keepBest.mode must be 'max' or 'min'");
    refuses({ keepBest: { k: 1, metric: 'loss' } }, "retention keepBest.mode must be 'max' or 'min'");
  });

  it('hasAnyRule: keepLatest or keepBest set, or a non-zero keepEverySteps', function () {
    assert.equal(hasAnyRule({}), false);
    assert.equal(hasAnyRule({ keepEverySteps: 0 }), false);
    assert.equal(hasAnyRule({ keepLatest: 0 }), true);
    assert.equal(hasAnyRule({ keepBest: { k: 0, metric: 'loss', mode: 'min' } }), true);
    assert.equal(hasAnyRule({ keepEverySteps: 10 }), true);
  });

  it('no rule: only the newest valid checkpoint is kept, and only as many are verified as it takes to find it', async function () {
    const cs = [cand('s10', 10), cand('s30', 30), cand('s20', 20)];
    assert.deepEqual(await retained(cs, {}), { keep: { s30: ['newest-valid'] }, asked: ['s30'] });
    assert.deepEqual(await retained(cs, {}, ['s30']), { keep: { s20: ['newest-valid'] }, asked: ['s30', 's20'] });
    assert.deepEqual(await retained(cs, {}, ['s30', 's20', 's10']), { keep: {}, asked: ['s30', 's20', 's10'] });
    assert.deepEqual(await retained([], { keepLatest: 2, keepEverySteps: 10 }), { keep: {}, asked: [] });
  });

  it('keepLatest keeps the newest N that verify, skipping damaged ones, and stops asking once they are found', async function () {
    const cs = [10, 20, 30, 40, 50].map((s) => cand(`s${s}`, s));
    assert.deepEqual(await retained(cs, { keepLatest: 2 }), {
      keep: { s50: ['latest', 'newest-valid'], s40: ['latest'] },
      asked: ['s50', 's40'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 2 }, ['s50', 's30']), {
      keep: { s40: ['latest', 'newest-valid'], s20: ['latest'] },
      asked: ['s50', 's40', 's30', 's20'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 0 }, ['s50']), {
      keep: { s40: ['newest-valid'] },
      asked: ['s50', 's40'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 9 }, ['s10']), {
      keep: { s50: ['latest', 'newest-valid'], s40: ['latest'], s30: ['latest'], s20: ['latest'] },
      asked: ['s50', 's40', 's30', 's20', 's10'],
    });
  });

  it('keepBest keeps the K best by the metric (max or min), only finite scores, skipping damaged ones', async function () {
    const cs = [
      cand('s1', 1, { acc: 0.5, loss: 3 }),
      cand('s2', 2, { acc: 0.9, loss: 1 }),
      cand('s3', 3, { acc: 0.7, loss: 2 }),
      cand('s4', 4, { acc: NaN, loss: Infinity }),
      cand('s5', 5, { loss: -Infinity }),
      cand('s6', 6, { acc: 0.1, loss: 5 }),
    ];
    assert.deepEqual(await retained(cs, { keepLatest: 0, keepBest: { k: 2, metric: 'acc', mode: 'max' } }), {
      keep: { s6: ['newest-valid'], s2: ['best-acc'], s3: ['best-acc'] },
      asked: ['s6', 's2', 's3'],
    });
    assert.deepEqual(await retained(cs, { keepBest: { k: 2, metric: 'loss', mode: 'min' } }, ['s2']), {
      keep: { s6: ['newest-valid'], s3: ['best-loss'], s1: ['best-loss'] },
      asked: ['s6', 's2', 's3', 's1'],
    });
    assert.deepEqual(await retained(cs, { keepBest: { k: 0, metric: 'loss', mode: 'min' } }), {
      keep: { s6: ['newest-valid'] },
      asked: ['s6'],
    });
    // validatePolicy lets k be absent: no best slot then.
    assert.deepEqual(
      await retained(cs, { keepBest: { metric: 'loss', mode: 'min' } as { k: number; metric: string; mode: 'min' } }),
      {
        keep: { s6: ['newest-valid'] },
        asked: ['s6'],
      },
    );
    // More slots than finite scores: every finite one is kept, the non-finite and missing never.
    assert.deepEqual(await retained(cs, { keepBest: { k: 10, metric: 'acc', mode: 'min' } }), {
      keep: { s6: ['newest-valid', 'best-acc'], s1: ['best-acc'], s3: ['best-acc'], s2: ['best-acc'] },
      asked: ['s6', 's6', 's1', 's3', 's2'],
    });
  });

  it('keepBest on a tie keeps the older checkpoint, whatever the order they are listed in', async function () {
    const a = cand('old', 10, { loss: 1 });
    const b = cand('new', 20, { loss: 1 });
    const c = cand('worse', 30, { loss: 2 });
    for (const mode of ['min', 'max'] as const) {
      const policy: RetentionPolicy = { keepLatest: 0, keepBest: { k: 1, metric: 'loss', mode } };
      const best = mode === 'min' ? 'old' : 'worse';
      for (const cs of [
        [a, b, c],
        [c, b, a],
      ]) {
        const { keep } = await retained(cs, policy);
        assert.deepEqual(keep[best], mode === 'min' ? ['best-loss'] : ['newest-valid', 'best-loss'], mode);
        assert.equal(keep.new, undefined, mode);
      }
    }
  });

  it('keepEverySteps keeps each step that is a multiple, damaged or not (the manager verifies them on load)', async function () {
    const cs = [0, 5, 10, 15, 20, 25].map((s) => cand(`s${s}`, s));
    assert.deepEqual(await retained(cs, { keepEverySteps: 10 }, ['s20']), {
      keep: { s25: ['newest-valid'], s0: ['every-10'], s10: ['every-10'], s20: ['every-10'] },
      asked: ['s25'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 1, keepEverySteps: 0 }), {
      keep: { s25: ['latest', 'newest-valid'] },
      asked: ['s25'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 1, keepEverySteps: 25 }), {
      keep: { s25: ['latest', 'newest-valid', 'every-25'], s0: ['every-25'] },
      asked: ['s25'],
    });
  });
});

/** A manifest with its id derived from the body, as commit writes it. */
function sealed(body: Omit<Manifest, 'id'>): Manifest {
  return { ...body, id: checkpointId(body.step, manifestBodyHash(body)) };
}

const hex = (c: string) => c.repeat(64);

const base = (): Omit<Manifest, 'id'> => ({
  formatVersion: 1,
  runId: 'run-a',
  step: 40,
  epoch: 2,
  createdAt: '2026-02-03T04:05:06.000Z',
  parent: null,
  metrics: { loss: 0.25 },
  fingerprints: { spec: 'f00d' },
  backend: { name: 'cpu', version: '4.22.0' },
  blobs: [{ name: 'w', dtype: 'float32', shape: [2, 2], sha256: hex('a'), size: 16 }],
  state: { rng: [1, 2] },
});

/** A manifest's JSON, edited freely by the tests (any shape, to build what a hostile file may hold). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = Record<string, any>;

/** The stored JSON of `m` with `edit` applied to it, decoded under `m`'s id: the error message, or '' when it decodes. */
function refusal(m: Manifest, edit: (raw: Raw) => void, id = m.id): string {
  const raw = JSON.parse(JSON.stringify(m)) as Raw;
  edit(raw);
  try {
    decodeManifest(new TextEncoder().encode(JSON.stringify(raw)), id);
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

describe('checkpoint rules: manifest codec', function () {
  it('ids: checkpointId pads the step to 9 digits and takes 8 hex digits of the hash; stepFromId reads only ours', function () {
    assert.equal(checkpointId(12, 'abcdef0123456789'), 'step-000000012-abcdef01');
    assert.equal(checkpointId(1234567890123, hex('e')), 'step-1234567890123-eeeeeeee');
    assert.equal(stepFromId('step-000000012-abcdef01'), 12);
    assert.equal(stepFromId('step-9007199254740991-00000000'), 9007199254740991);
    for (const bad of [
      'step-12-abcdef01',
      'step-12345678901234567-abcdef01',
      'step-000000012-ABCDEF01',
      'step-000000012-abcdef0',
      'step-000000012-abcdef012',
      'xstep-000000012-abcdef01',
      'step-000000012-abcdef01.json',
      '',
    ])
      assert.equal(stepFromId(bad), -1, bad);
  });

  it('assertSafeName refuses a run id that is not one path segment, naming the kind and the id', function () {
    assert.doesNotThrow(() => assertSafeName('run id', 'run-1.a_b'));
    assert.throws(
      () => assertSafeName('run id', '../x'),
      (err: Error) => err.message.startsWith('invalid run id "../x": it contains a path separator "/"; use letters'),
    );
    assert.throws(
      () => assertSafeName('source run id', ''),
      (err: Error) => err.message.startsWith('invalid source run id "": it is empty; use letters'),
    );
  });

  it('hashes: sha256 on this thread, off it and in slices give the same digest', async function () {
    const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    const bytes = new TextEncoder().encode('abc');
    assert.equal(sha256Hex('abc'), abc);
    assert.equal(sha256Hex(bytes), abc);
    assert.equal(await sha256HexOffThread(bytes), abc);
    assert.equal(await sha256HexYielding(bytes), abc);
    // It yields to the event loop between slices (so heartbeats flow), and not at all for data within one slice.
    const yields = async (data: Uint8Array, slice: number) => {
      let ran = false;
      setImmediate(() => (ran = true));
      await sha256HexYielding(data, slice);
      return ran;
    };
    assert.deepEqual(
      [await yields(bytes, 3), await yields(bytes, 4), await yields(bytes, 2), await yields(bytes, 1)],
      [false, false, true, true],
    );
    const data = new Uint8Array(1000).map((_, i) => (i * 7) % 251);
    const whole = sha256Hex(data);
    for (const slice of [1000, 999, 300, 7, 1])
      assert.equal(await sha256HexYielding(data, slice), whole, `slice ${slice}`);
  });

  it('nestsDeeperThan counts object and array levels below the root, without recursion', function () {
    assert.equal(nestsDeeperThan(5, 0), false);
    assert.equal(nestsDeeperThan(null, 0), false);
    assert.equal(nestsDeeperThan({}, 0), true);
    assert.equal(nestsDeeperThan({ a: [[1]] }, 2), true);
    assert.equal(nestsDeeperThan({ a: [[1]] }, 3), false);
    assert.equal(nestsDeeperThan({ a: 1, b: { c: 'x' } }, 1), true);
    assert.equal(nestsDeeperThan({ a: 1, b: { c: 'x' } }, 2), false);
    let deep: unknown = 0;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.equal(nestsDeeperThan(deep, 256), true);
    assert.equal(nestsDeeperThan(deep, 100_000), false);
  });

  it('assertJson refuses what JSON would change, naming the path', function () {
    const refuses = (v: unknown, message: string) =>
      assert.throws(
        () => assertJson(v, 'state'),
        (err: Error) => err instanceof TypeError && err.message === message,
        message,
      );
    assert.doesNotThrow(() =>
      assertJson({ a: [1, 'x', true, null, { b: -0.5 }], c: undefined, d: Object.create(null) }, 'state'),
    );
    refuses(NaN, 'state is NaN: JSON cannot store non-finite numbers');
    refuses({ a: [1, { b: -Infinity }] }, 'state.a[1].b is -Infinity: JSON cannot store non-finite numbers');
    refuses([1, undefined], 'state[1] is undefined: JSON would turn it into null');
    refuses({ when: new Date(0) }, 'state.when is a Date: only plain objects survive JSON');
    refuses([new Map()], 'state[0] is a Map: only plain objects survive JSON');
    refuses(
      { x: Object.create(Object.create(null)) },
      'state.x is a non-plain object: only plain objects survive JSON',
    );
    refuses({ f: () => 1 }, 'state.f is a function: not JSON');
    refuses([1n], 'state[0] is a bigint: not JSON');
    refuses(undefined, 'state is a undefined: not JSON');
  });

  it('canonicalJson sorts keys at every level and drops undefined fields; the body hash ignores id and signature', function () {
    assert.equal(
      canonicalJson({ b: 1, a: [{ d: undefined, c: null, b: 'x' }, 2], e: { z: true, y: [] } }),
      '{"a":[{"b":"x","c":null},2],"b":1,"e":{"y":[],"z":true}}',
    );
    assert.equal(canonicalJson('s'), '"s"');
    assert.equal(canonicalJson(null), 'null');
    const body = base();
    const h = manifestBodyHash(body);
    assert.equal(h, sha256Hex(canonicalJson(body)));
    assert.equal(manifestBodyHash({ ...body, id: 'other', signature: { keyId: 'k', hmacSha256: hex('1') } }), h);
    assert.notEqual(manifestBodyHash({ ...body, reason: 'time' }), h);
  });

  it('expectedSize, validShape and formatVersionOf', function () {
    assert.equal(expectedSize('float32', [2, 3]), 24);
    assert.equal(expectedSize('float64', []), 8);
    assert.equal(expectedSize('int16', [5]), 10);
    assert.equal(expectedSize('bool', [3, 0]), 0);
    assert.equal(expectedSize('string', [4]), null);
    assert.equal(validShape([]), true);
    assert.equal(validShape([0, 3]), true);
    for (const bad of [[-1], [1.5], [2 ** 53], ['2'], '2,3', null]) assert.equal(validShape(bad), false, String(bad));
    const piece = { sha256: hex('c'), size: 4 };
    const whole = { name: 'a', dtype: 'float32', shape: [1], ...piece };
    assert.equal(formatVersionOf([]), 1);
    assert.equal(formatVersionOf([whole, whole]), 1);
    assert.equal(formatVersionOf([whole, { ...whole, rows: { base: piece, patches: [piece] } }]), 2);
  });

  it('encodeManifest writes the fields in a fixed order, one-space indented, with optional ones only when set', function () {
    const m = sealed({ ...base(), reason: 'pause' });
    const shuffled = Object.fromEntries(Object.entries(m).reverse()) as unknown as Manifest;
    const text = new TextDecoder().decode(encodeManifest(shuffled));
    const order =
      'formatVersion id runId step epoch createdAt reason parent metrics fingerprints backend blobs state'.split(' ');
    assert.equal(
      text,
      JSON.stringify(Object.fromEntries(order.map((k) => [k, m[k as keyof Manifest]])), null, 1) + '\n',
    );
    assert.deepEqual(decodeManifest(encodeManifest(m), m.id), m);

    const piece = { sha256: hex('b'), size: 16 };
    const chained = sealed({
      ...base(),
      formatVersion: 2,
      blobs: [
        {
          size: 16,
          shape: [2, 2],
          dtype: 'float32',
          rows: { patches: [piece], base: piece },
          sha256: hex('a'),
          name: 'w',
        },
      ],
    });
    const signed = { ...chained, signature: { hmacSha256: hex('d'), keyId: 'k1' } };
    const out = new TextDecoder().decode(encodeManifest(signed));
    const parsed = JSON.parse(out);
    assert.deepEqual(Object.keys(parsed), order.filter((k) => k !== 'reason').concat('signature'));
    assert.deepEqual(Object.keys(parsed.blobs[0]), ['name', 'dtype', 'shape', 'sha256', 'size', 'rows']);
    assert.deepEqual(Object.keys(parsed.blobs[0].rows), ['base', 'patches']);
    assert.deepEqual(Object.keys(parsed.signature), ['keyId', 'hmacSha256']);
    assert.deepEqual(decodeManifest(encodeManifest(signed), signed.id), signed);
  });

  it('decodeManifest accepts a sound manifest, with or without the optional fields', function () {
    const plain = sealed(base());
    const decoded = decodeManifest(encodeManifest(plain), plain.id);
    assert.deepEqual(decoded, plain);
    assert.equal('reason' in decoded, false);
    assert.equal('signature' in decoded, false);
    const full = sealed({
      ...base(),
      reason: 'stop',
      parent: { runId: 'src', id: 'step-000000001-00000000' },
      blobs: [
        { name: 'w', dtype: 'float32', shape: [2, 2], sha256: hex('a'), size: 16 },
        { name: 'names', dtype: 'string', shape: [3], sha256: hex('b'), size: 5 },
      ],
    });
    assert.deepEqual(decodeManifest(encodeManifest(full), full.id), full);
    assert.equal(
      refusal(plain, () => {}),
      '',
    );
    assert.equal(refusal(plain, (r) => (r.blobs[0].size = 4_294_967_296)).includes('needs 16 bytes'), true);
  });

  it('decodeManifest refuses bytes that are not a JSON object, or a format it does not read', function () {
    const m = sealed(base());
    const bytes = (s: string) => new TextEncoder().encode(s);
    assert.throws(
      () => decodeManifest(new Uint8Array([0x7b, 0xff]), m.id),
      (err: Error) => err.message.startsWith('manifest does not parse (2 bytes): ') && /utf-8/i.test(err.message),
    );
    assert.throws(
      () => decodeManifest(bytes('{"a":'), m.id),
      (err: Error) => err.message.startsWith('manifest does not parse (5 bytes): ') && /JSON/.test(err.message),
    );
    for (const s of ['[]', 'null', '5', '"x"'])
      assert.throws(() => decodeManifest(bytes(s), m.id), { message: 'manifest is not a JSON object' });
    assert.equal(
      refusal(m, (r) => (r.formatVersion = 3)),
      'unsupported formatVersion 3 (this build reads 1 and 2)',
    );
    assert.equal(
      refusal(m, (r) => delete r.formatVersion),
      'unsupported formatVersion undefined (this build reads 1 and 2)',
    );
    assert.equal(
      refusal(m, (r) => (r.formatVersion = '1')),
      'unsupported formatVersion "1" (this build reads 1 and 2)',
    );
    assert.equal(
      refusal(m, (r) => (r.formatVersion = 'v'.repeat(100))),
      `unsupported formatVersion "${'v'.repeat(76)}... (this build reads 1 and 2)`,
    );
    assert.equal(
      refusal(m, (r) => (r.formatVersion = 'v'.repeat(78))),
      `unsupported formatVersion "${'v'.repeat(78)}" (this build reads 1 and 2)`,
    );
  });

  it('decodeManifest names the top-level field that is wrong', function () {
    const m = sealed(base());
    const cases: Array<[(r: Raw) => unknown, string]> = [
      [(r) => (r.id = 7), 'manifest field id is not a string'],
      [(r) => (r.runId = null), 'manifest field runId is not a string'],
      [(r) => delete r.createdAt, 'manifest field createdAt is not a string'],
      [(r) => (r.step = '40'), 'manifest field step is not a number'],
      [(r) => (r.epoch = 'two'), 'manifest field epoch is not a number'],
      [(r) => (r.step = -1), 'manifest step -1 is not a non-negative integer'],
      [(r) => (r.step = 40.5), 'manifest step 40.5 is not a non-negative integer'],
      [(r) => (r.step = 2 ** 53), 'manifest step 9007199254740992 is not a non-negative integer'],
      [(r) => (r.blobs = {}), 'manifest field blobs is not an array'],
      [(r) => (r.metrics = [1]), 'manifest field metrics is not an object of numbers'],
      [(r) => (r.metrics = null), 'manifest field metrics is not an object of numbers'],
      [(r) => (r.metrics = { loss: '1' }), 'manifest field metrics is not an object of numbers'],
      [(r) => (r.fingerprints = 'f'), 'manifest field fingerprints is not an object of strings'],
      [(r) => (r.fingerprints = { spec: 1 }), 'manifest field fingerprints is not an object of strings'],
      [(r) => (r.backend = null), 'manifest field backend is not {name, version}'],
      [(r) => (r.backend = { name: 'cpu' }), 'manifest field backend is not {name, version}'],
      [(r) => (r.backend = { version: '1' }), 'manifest field backend is not {name, version}'],
      [(r) => (r.reason = 5), 'manifest field reason is not a string'],
      [(r) => delete r.state, 'manifest has no state'],
      [(r) => (r.signature = { keyId: 'k' }), 'manifest field signature is not {keyId, hmacSha256}'],
      [(r) => (r.signature = { hmacSha256: 'h' }), 'manifest field signature is not {keyId, hmacSha256}'],
      [(r) => (r.signature = 'sig'), 'manifest field signature is not {keyId, hmacSha256}'],
      [(r) => (r.parent = 'src'), 'parent is neither null nor {runId, id}'],
      [(r) => (r.parent = { runId: 'src' }), 'parent is neither null nor {runId, id}'],
      [(r) => (r.parent = { id: 'x' }), 'parent is neither null nor {runId, id}'],
      [(r) => (r.formatVersion = 2), 'formatVersion 2 but no blob is stored as rows'],
    ];
    for (const [edit, message] of cases) assert.equal(refusal(m, edit), message, edit.toString());
    // JSON text can hold a number too large for a double: it parses as Infinity.
    const text = new TextDecoder().decode(encodeManifest(m));
    for (const [from, to, message] of [
      ['"epoch": 2', '"epoch": 1e999', 'manifest field epoch is not a number'],
      ['"step": 40', '"step": 1e999', 'manifest field step is not a number'],
      ['"loss": 0.25', '"loss": -1e999', 'manifest field metrics is not an object of numbers'],
    ]) {
      assert.ok(text.includes(from), from);
      assert.throws(() => decodeManifest(new TextEncoder().encode(text.replace(from, to)), m.id), { message });
    }
    assert.equal(
      refusal(m, () => {}, 'step-000000040-00000000'),
      `manifest says id "${m.id}" but is stored as step-000000040-00000000`,
    );
    const longId = 'i'.repeat(90);
    assert.equal(
      refusal(m, (r) => (r.id = longId)),
      `manifest says id "${'i'.repeat(76)}... but is stored as ${m.id}`,
    );
    let deep: unknown = 1;
    for (let i = 0; i < 257; i++) deep = [deep];
    assert.equal(
      refusal(m, (r) => (r.state = deep)),
      'manifest field state nests deeper than 256 levels',
    );
    deep = 1;
    for (let i = 0; i < 256; i++) deep = [deep];
    assert.match(
      refusal(m, (r) => (r.state = deep)),
      /^manifest content does not match its id/,
    );
  });

  it('decodeManifest names the blob and what is wrong with it', function () {
    const m = sealed({
      ...base(),
      blobs: [
        { name: 'w', dtype: 'float32', shape: [2, 2], sha256: hex('a'), size: 16 },
        { name: 'n', dtype: 'string', shape: [1], sha256: hex('b'), size: 3 },
      ],
    });
    const hashMismatch = /^manifest content does not match/;
    // [which blob, the edit, the refusal]
    const cases: Array<[number, (b: Raw) => unknown, string | RegExp]> = [
      [0, (b) => (b.name = 3), 'blobs[0].name is not a non-empty string'],
      [1, (b) => (b.name = ''), 'blobs[1].name is not a non-empty string'],
      [1, (b) => (b.name = 'w'), 'blob w appears twice'],
      [0, (b) => (b.dtype = 4), 'blob w: dtype is not a string'],
      [1, (b) => ((b.name = 'x'.repeat(81)), (b.dtype = 0)), `blob ${'x'.repeat(77)}...: dtype is not a string`],
      [1, (b) => ((b.name = 'x'.repeat(80)), (b.dtype = 0)), `blob ${'x'.repeat(80)}: dtype is not a string`],
      [0, (b) => (b.shape = [2, -2]), 'blob w: shape is not a list of non-negative integers'],
      [1, (b) => (b.shape = new Array(17).fill(1)), 'blob n: shape has 17 dimensions, at most 16'],
      [1, (b) => (b.shape = new Array(16).fill(1)), hashMismatch],
      [0, (b) => (b.sha256 = hex('A')), 'blob w: sha256 is not 64 hex digits'],
      [0, (b) => (b.sha256 = `${hex('a')}0`), 'blob w: sha256 is not 64 hex digits'],
      [0, (b) => (b.sha256 = `0${hex('a')}`), 'blob w: sha256 is not 64 hex digits'],
      [0, (b) => delete b.sha256, 'blob w: sha256 is not 64 hex digits'],
      [1, (b) => (b.size = -1), 'blob n: bad size'],
      [1, (b) => (b.size = 1.5), 'blob n: bad size'],
      [1, (b) => (b.size = '3'), 'blob n: bad size'],
      [1, (b) => (b.size = 2 ** 32 + 1), 'blob n: 4294967297 bytes is larger than a blob can be (4294967296)'],
      [1, (b) => (b.size = 2 ** 32), hashMismatch],
      [0, (b) => (b.size = 12), 'blob w: "float32"[2,2] needs 16 bytes, manifest says 12'],
      [0, (b) => (b.dtype = 'int8'), 'blob w: "int8"[2,2] needs 4 bytes, manifest says 16'],
    ];
    assert.equal(
      refusal(m, (r) => (r.blobs[1] = [])),
      'blobs[1] is not an object',
    );
    assert.equal(
      refusal(m, (r) => (r.blobs[0] = null)),
      'blobs[0] is not an object',
    );
    for (const [i, edit, want] of cases) {
      const got = refusal(m, (r) => edit(r.blobs[i]));
      if (typeof want === 'string') assert.equal(got, want, edit.toString());
      else assert.match(got, want, edit.toString());
    }
  });

  it('decodeManifest checks a row chain: only in format 2, its base the size of the blob, each piece named', function () {
    const piece = (c: string, size: number) => ({ sha256: hex(c), size });
    const m = sealed({
      ...base(),
      formatVersion: 2,
      blobs: [
        {
          name: 'w',
          dtype: 'float32',
          shape: [2, 2],
          sha256: hex('a'),
          size: 16,
          rows: { base: piece('b', 16), patches: [piece('c', 9)] },
        },
        { name: 'v', dtype: 'float32', shape: [1], sha256: hex('d'), size: 4 },
      ],
    });
    assert.deepEqual(decodeManifest(encodeManifest(m), m.id), m);
    const rows = (edit: (rows: Raw) => unknown) => refusal(m, (r) => edit(r.blobs[0].rows));
    assert.equal(
      refusal(m, (r) => (r.formatVersion = 1)),
      'blob w: rows needs formatVersion 2',
    );
    assert.equal(
      rows((c) => (c.base.size = 12)),
      'blob w: rows.base is 12 bytes, not 16',
    );
    assert.equal(
      rows((c) => (c.base.sha256 = 'b')),
      'blob w: rows.base: sha256 is not 64 hex digits',
    );
    assert.equal(
      rows((c) => (c.patches[0].size = -3)),
      'blob w: rows.patches[0]: bad size',
    );
    assert.equal(
      refusal(m, (r) => (r.blobs[0].rows = null)),
      'blob w: rows is not an object',
    );
    assert.equal(
      refusal(m, (r) => (r.blobs[1].rows = { base: piece('d', 4), patches: [] })),
      'blob v: rows.patches is not a list of 1 to 16 pieces',
    );
  });
});

const RUN = 'run-r';
/** A fresh filesystem store, the root it writes under, and the same store without its optional one-pass methods. */
function stores(): { fsStore: FsCheckpointStore; plain: CheckpointStore; root: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-rules-'));
  const fsStore = new FsCheckpointStore(root);
  const plain: CheckpointStore = {
    url: fsStore.url,
    writeBlob: (k, d) => fsStore.writeBlob(k, d),
    writeAtomic: (k, d, o) => fsStore.writeAtomic(k, d, o),
    read: (k) => fsStore.read(k),
    exists: (k) => fsStore.exists(k),
    list: (p) => fsStore.list(p),
    listDetailed: (p) => fsStore.listDetailed(p),
    delete: (k) => fsStore.delete(k),
  };
  return { fsStore, plain, root };
}

describe('checkpoint rules: manager', function () {
  let root: string;
  let fsStore: FsCheckpointStore;
  let plain: CheckpointStore;
  const file = (key: string) => path.join(root, ...key.split('/'));
  beforeEach(() => ({ fsStore, plain, root } = stores()));
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('commit refuses each bad input field with a TypeError naming it, and stores nothing', async function () {
    const mgr = new CheckpointManager(fsStore, RUN);
    const w = (extra: Record<string, unknown>) => ({
      name: 'w',
      dtype: 'float32',
      shape: [4],
      data: f32(1, 2, 3, 4),
      ...extra,
    });
    const cases: Array<[Partial<Record<keyof CommitInput, unknown>>, string]> = [
      [{ step: -1 }, 'step -1 is not a non-negative integer'],
      [{ step: 1.5 }, 'step 1.5 is not a non-negative integer'],
      [{ step: 2 ** 53 }, 'step 9007199254740992 is not a non-negative integer'],
      [{ epoch: NaN }, 'epoch NaN is not a finite number'],
      [{ epoch: '1' }, 'epoch 1 is not a finite number'],
      [{ createdAt: 'yesterday' }, 'createdAt "yesterday" is not an ISO date'],
      [{ createdAt: 5 }, 'createdAt 5 is not an ISO date'],
      [{ parent: { runId: 'a' } }, 'parent must be null or {runId, id}'],
      [{ parent: { id: 'a' } }, 'parent must be null or {runId, id}'],
      [{ parent: undefined }, 'parent must be null or {runId, id}'],
      [{ blobs: {} }, 'blobs must be an array'],
      [{ blobs: [w({ name: '' })] }, 'every blob needs a non-empty name'],
      [{ blobs: [w({ name: 3 })] }, 'every blob needs a non-empty name'],
      [{ blobs: [w({}), w({})] }, 'blob name w appears twice'],
      [{ blobs: [w({ dtype: 4 })] }, 'blob w: dtype must be a string'],
      [{ blobs: [w({ shape: [4, -1] })] }, 'blob w: shape must be a list of non-negative integers'],
      [{ blobs: [w({ shape: new Array(17).fill(1), dtype: 'x' })] }, 'blob w: shape has more than 16 dimensions'],
      [{ blobs: [w({ data: [1, 2, 3, 4] })] }, 'blob w: data must be a Uint8Array'],
      [{ blobs: [w({ shape: [3] })] }, 'blob w: float32[3] needs 12 bytes, got 16'],
      [{ blobs: [w({ shape: [2, 1] })] }, 'blob w: float32[2,1] needs 8 bytes, got 16'],
      [
        { blobs: [w({ changes: { from: 'abc', rows: new Uint32Array([0]) } })] },
        'blob w: changes.from is not a sha256',
      ],
      [
        { blobs: [w({ changes: { from: hex('A'), rows: new Uint32Array([0]) } })] },
        'blob w: changes.from is not a sha256',
      ],
      [{ blobs: [w({ changes: { from: 7, rows: new Uint32Array([0]) } })] }, 'blob w: changes.from is not a sha256'],
      [
        { blobs: [w({ changes: { from: hex('a'), rows: [0] } })] },
        'blob w: changes.rows must be ascending row indices below 4',
      ],
      [
        { blobs: [w({ changes: { from: hex('a'), rows: new Uint32Array([4]) } })] },
        'blob w: changes.rows must be ascending row indices below 4',
      ],
      [
        { blobs: [w({ changes: { from: hex('a'), rows: new Uint32Array([1, 1]) } })] },
        'blob w: changes.rows must be ascending row indices below 4',
      ],
      [
        { blobs: [w({ changes: { from: hex('a'), rows: new Uint32Array([2, 1]) } })] },
        'blob w: changes.rows must be ascending row indices below 4',
      ],
      [
        { blobs: [w({ shape: [], data: f32(1), changes: { from: hex('a'), rows: new Uint32Array([0]) } })] },
        'blob w: changes.rows must be ascending row indices below 0',
      ],
      [{ metrics: undefined }, 'metrics missing'],
      [{ metrics: { loss: NaN } }, 'metric loss is NaN: metrics must be finite numbers'],
      [{ metrics: { acc: '1' } }, 'metric acc is 1: metrics must be finite numbers'],
      [{ fingerprints: undefined }, 'fingerprints missing'],
      [{ fingerprints: { spec: 1 } }, 'fingerprint spec must be a string'],
      [{ backend: undefined }, 'backend must be {name, version}'],
      [{ backend: { name: 'cpu' } }, 'backend must be {name, version}'],
      [{ backend: { version: '1' } }, 'backend must be {name, version}'],
      [{ reason: 5 }, 'reason must be a string'],
      [{ state: undefined }, 'state is missing (use null for none)'],
      [{ state: JSON.parse('['.repeat(257) + ']'.repeat(257)) }, 'state nests deeper than 256 levels'],
    ];
    for (const [extra, message] of cases) {
      await assert.rejects(
        mgr.commit({ ...commitInput(1), ...extra } as CommitInput),
        (err: Error) => err instanceof TypeError && err.message === `checkpoint commit: ${message}`,
        message,
      );
    }
    await assert.rejects(mgr.commit(commitInput(1, { state: { a: NaN } })), {
      name: 'TypeError',
      message: 'state.a is NaN: JSON cannot store non-finite numbers',
    });
    assert.deepEqual(await fsStore.list(`${RUN}/`), []);
    // At the edges: rows up to the last one, a state exactly as deep as allowed, an unknown dtype of any size.
    const ok = await mgr.commit({
      ...commitInput(2, { state: JSON.parse('['.repeat(256) + ']'.repeat(256)) }),
      blobs: [
        w({ changes: { from: hex('a'), rows: new Uint32Array([0, 3]) } }),
        { name: 's', dtype: 'string', shape: [2], data: new Uint8Array(3) },
        { name: 'r16', dtype: 'float32', shape: new Array(16).fill(1), data: f32(1) },
      ],
    });
    assert.deepEqual(
      ok.blobs.map((b) => [b.name, b.size]),
      [
        ['w', 16],
        ['s', 3],
        ['r16', 4],
      ],
    );
  });

  it('commit keeps a copy of what it stores (parent, state, metrics), and the reason only when given', async function () {
    const mgr = new CheckpointManager(fsStore, RUN);
    const parent = { runId: 'src', id: 'step-000000001-00000000' };
    const inp = commitInput(3, { parent, reason: 'time', state: { a: [1] } });
    const m = await mgr.commit(inp);
    parent.id = 'changed';
    (inp.state as { a: number[] }).a.push(2);
    inp.metrics.loss = 9;
    assert.deepEqual(m.parent, { runId: 'src', id: 'step-000000001-00000000' });
    assert.deepEqual(m.state, { a: [1] });
    assert.deepEqual(m.metrics, { loss: 0.25 });
    assert.deepEqual([m.fingerprints, m.backend], [{ spec: 's' }, { name: 'cpu', version: '0' }]);
    assert.equal(m.reason, 'time');
    assert.deepEqual(await mgr.readManifest(m.id), m);
    const bare = await mgr.commit(commitInput(4));
    assert.equal('reason' in bare, false);
    assert.equal('reason' in (await mgr.readManifest(bare.id)), false);
  });

  it('without the optional one-pass store methods: blobs are hashed, deduplicated, written and verified the same', async function () {
    const mgr = new CheckpointManager(plain, RUN, { concurrency: 0, blobGcGraceMs: 0 });
    const same = f32(7, 7, 7, 7);
    const m = await mgr.commit({
      ...commitInput(5),
      blobs: [
        { name: 'x', dtype: 'float32', shape: [4], data: same },
        { name: 'y', dtype: 'float32', shape: [2, 2], data: same },
        { name: 'z', dtype: 'float32', shape: [1], data: f32(1) },
      ],
    });
    const sha = sha256Hex(same);
    assert.deepEqual(
      m.blobs.map((b) => b.sha256),
      [sha, sha, sha256Hex(f32(1))],
    );
    assert.deepEqual(
      await plain.list(`${RUN}/blobs/`),
      [`${RUN}/blobs/${sha}`, `${RUN}/blobs/${sha256Hex(f32(1))}`].sort(),
    );
    const loaded = await mgr.load(m.id);
    assert.deepEqual([...loaded.blobs.keys()], ['x', 'y', 'z']);
    assert.deepEqual(loaded.blobs.get('y'), same);
    assert.deepEqual(await mgr.verify(m.id), { id: m.id, ok: true, problems: [] });
    // A shorter blob is a size mismatch (not hashed); one of the right size but other bytes, a sha256 mismatch.
    fs.writeFileSync(file(`${RUN}/blobs/${sha}`), f32(7, 7, 7));
    fs.writeFileSync(file(`${RUN}/blobs/${sha256Hex(f32(1))}`), f32(2));
    assert.deepEqual(await mgr.verify(m.id), {
      id: m.id,
      ok: false,
      problems: [
        { blob: 'x', reason: 'size mismatch: expected 16 bytes, found 12' },
        { blob: 'y', reason: 'size mismatch: expected 16 bytes, found 12' },
        {
          blob: 'z',
          reason: `sha256 mismatch: expected ${sha256Hex(f32(1)).slice(0, 12)}…, found ${sha256Hex(f32(2)).slice(0, 12)}…`,
        },
      ],
    });
    fs.rmSync(file(`${RUN}/blobs/${sha}`));
    assert.deepEqual((await mgr.verify(m.id)).problems[0], { blob: 'x', reason: `missing (${RUN}/blobs/${sha})` });
    await assert.rejects(mgr.load(m.id), {
      message: `checkpoint ${m.id} is damaged: blob x: missing (${RUN}/blobs/${sha})`,
    });
  });

  it('row chains through a store without one-pass methods: planned, hashed off the thread, and each piece checked', async function () {
    const mgr = new CheckpointManager(plain, RUN, { concurrency: 1 });
    const tableOf = (...v: number[]) => ({ name: 't', dtype: 'float32', shape: [4, 2], data: f32(...v) });
    const first = await mgr.commit({ ...commitInput(1), blobs: [tableOf(1, 2, 3, 4, 5, 6, 7, 8)] });
    const baseSha = first.blobs[0].sha256;
    const next = f32(1, 2, 9, 9, 5, 6, 7, 8);
    const changes = { from: baseSha, rows: Uint32Array.of(1) };
    const m = await mgr.commit(
      { ...commitInput(2), blobs: [{ ...tableOf(), data: next, changes }] },
      { previous: first, hashOffThread: true },
    );
    const patchSize = 16 + 4 + 8;
    const patch = m.blobs[0].rows!.patches[0];
    const entry = { name: 't', dtype: 'float32', shape: [4, 2], sha256: sha256Hex(next), size: 32 };
    assert.deepEqual(m.blobs[0], {
      ...entry,
      rows: { base: { sha256: baseSha, size: 32 }, patches: [{ sha256: patch.sha256, size: patchSize }] },
    });
    assert.equal(m.formatVersion, 2);
    assert.deepEqual((await mgr.load(m.id)).blobs.get('t'), next);
    const read = await mgr.readBlob(m.blobs[0]);
    assert.deepEqual(read, { data: next, problem: null });
    // The same changes against a previous checkpoint of another run, or from another content: stored whole.
    for (const previous of [
      { ...first, runId: 'other' },
      { ...first, blobs: [{ ...first.blobs[0], sha256: hex('e') }] },
    ]) {
      const whole = await mgr.commit(
        { ...commitInput(3), blobs: [{ ...tableOf(), data: next, changes }] },
        { previous },
      );
      assert.deepEqual(whole.blobs[0], entry);
    }
    // Damage to a piece is named by the piece, and no content is given for a chain that cannot be applied.
    const patchFile = file(mgr.blobKey(patch.sha256));
    const good = fs.readFileSync(patchFile);
    fs.writeFileSync(patchFile, good.subarray(0, 20));
    assert.deepEqual(await mgr.readBlob(m.blobs[0]), {
      data: null,
      problem: `row patch 1: size mismatch: expected ${patchSize} bytes, found 20`,
    });
    const flipped = Buffer.from(good);
    flipped[patchSize - 1] ^= 1;
    fs.writeFileSync(patchFile, flipped);
    assert.deepEqual(await mgr.readBlob(m.blobs[0]), {
      data: null,
      problem: `row patch 1: sha256 mismatch: expected ${patch.sha256.slice(0, 12)}…, found ${sha256Hex(flipped).slice(0, 12)}…`,
    });
    fs.writeFileSync(patchFile, good);
    fs.renameSync(file(mgr.blobKey(baseSha)), `${file(mgr.blobKey(baseSha))}.away`);
    assert.deepEqual(await mgr.readBlob(m.blobs[0]), {
      data: null,
      problem: `row chain base: missing (${mgr.blobKey(baseSha)})`,
    });
    fs.renameSync(`${file(mgr.blobKey(baseSha))}.away`, file(mgr.blobKey(baseSha)));
    // A whole blob that does not verify still gives the bytes read.
    const wholeBlob = first.blobs[0];
    fs.writeFileSync(file(mgr.blobKey(wholeBlob.sha256)), f32(0, 0, 0, 0, 0, 0, 0, 0));
    assert.deepEqual(await mgr.readBlob(wholeBlob), {
      data: f32(0, 0, 0, 0, 0, 0, 0, 0),
      problem: `sha256 mismatch: expected ${baseSha.slice(0, 12)}…, found ${sha256Hex(f32(0, 0, 0, 0, 0, 0, 0, 0)).slice(0, 12)}…`,
    });
    fs.writeFileSync(file(mgr.blobKey(wholeBlob.sha256)), f32(1, 2, 3, 4, 5, 6, 7, 8));
    // Pieces that verify but make up other content, or that are no patch at all.
    const otherSha = sha256Hex(f32(0, 0, 0, 0, 0, 0, 0, 1));
    assert.deepEqual(await mgr.readBlob({ ...m.blobs[0], sha256: otherSha }), {
      data: next,
      problem: `row chain gives sha256 ${sha256Hex(next).slice(0, 12)}…, expected ${otherSha.slice(0, 12)}…`,
    });
    const junk = f32(1, 2, 3, 4, 5);
    await plain.writeBlob(mgr.blobKey(sha256Hex(junk)), junk);
    const junkChain = {
      ...m.blobs[0],
      rows: { base: { sha256: baseSha, size: 32 }, patches: [{ sha256: sha256Hex(junk), size: 20 }] },
    };
    assert.deepEqual(await mgr.readBlob(junkChain), { data: null, problem: 'row chain: not a row patch (version 1)' });
  });

  it('blob writes: at most `concurrency` in flight, none started after the first failure; off-thread hashing writes all at once', async function () {
    let inFlight = 0;
    let most = 0;
    const started: string[] = [];
    const failing = (failFirst: boolean): CheckpointStore => ({
      ...plain,
      async writeBlob(key, data) {
        started.push(key);
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setImmediate(r));
        inFlight--;
        if (failFirst && started.length === 1) throw new Error('EIO: first write refused');
        await plain.writeBlob(key, data);
      },
    });
    const blobs = [1, 2, 3, 4].map((v) => ({ name: `b${v}`, dtype: 'float32', shape: [1], data: f32(v) }));
    await assert.rejects(
      new CheckpointManager(failing(true), RUN, { concurrency: 1 }).commit({ ...commitInput(1), blobs }),
      {
        message: 'EIO: first write refused',
      },
    );
    assert.deepEqual([started.length, most], [1, 1]);
    assert.deepEqual(await plain.list(`${RUN}/`), []);
    started.length = 0;
    most = 0;
    await new CheckpointManager(failing(false), RUN, { concurrency: 2 }).commit({ ...commitInput(1), blobs });
    assert.deepEqual([started.length, most], [4, 2]);
    started.length = 0;
    most = 0;
    const m = await new CheckpointManager(failing(false), RUN, { concurrency: 1 }).commit(
      { ...commitInput(2), blobs: [...blobs, { ...blobs[0], name: 'again' }] },
      { hashOffThread: true },
    );
    assert.deepEqual([started.length, most], [4, 4]);
    assert.deepEqual(
      m.blobs.map((b) => b.sha256),
      [...blobs, blobs[0]].map((b) => sha256Hex(b.data)),
    );
  });

  it('latestValid: null for an empty run, the newest that verifies with what it skipped, else NoValidCheckpointError', async function () {
    const mgr = new CheckpointManager(fsStore, RUN);
    assert.equal(await mgr.latestValid(), null);
    const a = await mgr.commit(commitInput(1));
    const b = await mgr.commit(commitInput(2));
    const broken = 'step-000000003-0badc0de';
    fs.writeFileSync(file(mgr.manifestKey(broken)), '[]');
    fs.writeFileSync(file(mgr.blobKey(b.blobs[0].sha256)), f32(0, 0, 0));
    const found = await mgr.latestValid();
    assert.equal(found?.manifest.id, a.id);
    assert.deepEqual(found?.skipped, [
      { id: broken, ok: false, problems: [{ reason: 'manifest: manifest is not a JSON object' }] },
      { id: b.id, ok: false, problems: [{ blob: 'w', reason: 'size mismatch: expected 16 bytes, found 12' }] },
    ]);
    fs.rmSync(file(mgr.blobKey(a.blobs[1].sha256)));
    await assert.rejects(mgr.latestValid(), (err: Error) => {
      assert.ok(err instanceof NoValidCheckpointError);
      assert.equal(err.name, 'NoValidCheckpointError');
      assert.equal(err.code, 'not-found');
      assert.equal(err.runId, RUN);
      const bias = `blob b: missing (${mgr.blobKey(a.blobs[1].sha256)})`;
      assert.equal(
        err.message,
        `run ${RUN} has 3 checkpoint(s) and none verifies: ${broken} (manifest: manifest is not a JSON object), ` +
          `${b.id} (blob w: size mismatch: expected 16 bytes, found 12; ${bias}), ${a.id} (${bias})`,
      );
      return true;
    });
  });

  it('latestValid: at the same step, a readable manifest counts as newer than an unreadable one', async function () {
    const mgr = new CheckpointManager(fsStore, RUN);
    const m = await mgr.commit(commitInput(5));
    for (const broken of ['step-000000005-00000000', 'step-000000005-ffffffff'])
      fs.writeFileSync(file(mgr.manifestKey(broken)), 'null');
    assert.deepEqual(await mgr.latestValid(), { manifest: m, skipped: [] });
  });

  it('commit with a previous checkpoint: blobs without changes, or new since it, are stored whole', async function () {
    const mgr = new CheckpointManager(fsStore, RUN);
    const first = await mgr.commit(commitInput(1));
    const m = await mgr.commit(
      {
        ...commitInput(2),
        blobs: [
          { name: 'w', dtype: 'float32', shape: [2, 2], data: f32(2, 1, 2, 3) },
          {
            name: 'fresh',
            dtype: 'float32',
            shape: [2, 2],
            data: f32(7, 1, 2, 3),
            changes: { from: first.blobs[0].sha256, rows: Uint32Array.of(0) },
          },
        ],
      },
      { previous: first },
    );
    assert.deepEqual(
      m.blobs.map((b) => [b.name, b.sha256, 'rows' in b]),
      [
        ['w', sha256Hex(f32(2, 1, 2, 3)), false],
        ['fresh', sha256Hex(f32(7, 1, 2, 3)), false],
      ],
    );
    assert.equal(m.formatVersion, 1);
  });

  it('the error classes: name, code, fields and message', function () {
    const corrupt = new CheckpointCorruptError('step-000000001-00000000', 'w', 'missing (k)');
    assert.deepEqual(
      [corrupt.name, corrupt.code, corrupt.checkpointId, corrupt.blob, corrupt.reason, corrupt.message],
      [
        'CheckpointCorruptError',
        'damaged',
        'step-000000001-00000000',
        'w',
        'missing (k)',
        'checkpoint step-000000001-00000000 is damaged: blob w: missing (k)',
      ],
    );
    assert.equal(
      new CheckpointCorruptError('c', undefined, 'manifest: x').message,
      'checkpoint c is damaged: manifest: x',
    );
    assert.equal(new CheckpointCorruptError('c', '', 'x').message, 'checkpoint c is damaged: blob : x');
    assert.equal(new NoValidCheckpointError('r', []).message, 'run r has 0 checkpoint(s) and none verifies: ');
    for (const kind of ['missing', 'unknown-key', 'mismatch', 'forged'] as const) {
      const err = new CheckpointSignatureError('r', 'c', kind, 'is not signed');
      assert.deepEqual(
        [err.name, err.code, err.runId, err.checkpointId, err.kind],
        ['CheckpointSignatureError', 'damaged', 'r', 'c', kind],
      );
      assert.ok(
        err.message.startsWith('checkpoint r:c is not signed: refused (signature check, not damage). '),
        err.message,
      );
    }
  });

  it('ids, pins and other runs: refusals name what was asked for', async function () {
    const mgr = new CheckpointManager(fsStore, RUN);
    assert.equal(mgr.blobKey(hex('a')), `${RUN}/blobs/${hex('a')}`);
    assert.equal(mgr.manifestKey('step-000000001-00000000'), `${RUN}/manifests/step-000000001-00000000.json`);
    assert.equal(mgr.pinKey('step-000000001-00000000'), `${RUN}/pins/step-000000001-00000000`);
    assert.equal(mgr.signing, null);
    const notId = (err: unknown, message: string) => err instanceof CheckpointNotFoundError && err.message === message;
    await assert.rejects(mgr.readManifest('../x'), (e) => notId(e, 'not a checkpoint id: "../x"'));
    await assert.rejects(mgr.pin('step-1-00000000'), (e) => notId(e, 'not a checkpoint id: "step-1-00000000"'));
    await assert.rejects(mgr.unpin('x'), (e) => notId(e, 'not a checkpoint id: "x"'));
    const absent = 'step-000000009-00000000';
    await assert.rejects(mgr.pin(absent), (e) => notId(e, `cannot pin ${absent}: no such checkpoint in run ${RUN}`));
    await assert.rejects(mgr.readManifest(absent), (e) =>
      notId(e, `no checkpoint ${absent} in run ${RUN} at ${fsStore.url}`),
    );
    assert.deepEqual(await mgr.verify(absent), {
      id: absent,
      ok: false,
      problems: [{ reason: 'checkpoint not found' }],
    });
    const m = await mgr.commit(commitInput(9));
    await mgr.pin(m.id);
    assert.deepEqual(JSON.parse(fs.readFileSync(file(mgr.pinKey(m.id)), 'utf8')), { id: m.id });
    // The same manifest under another run's directory is not that run's checkpoint.
    const other = new CheckpointManager(fsStore, 'run-other');
    fs.mkdirSync(path.dirname(file(other.manifestKey(m.id))), { recursive: true });
    fs.copyFileSync(file(mgr.manifestKey(m.id)), file(other.manifestKey(m.id)));
    assert.deepEqual(await other.verify(m.id), {
      id: m.id,
      ok: false,
      problems: [{ reason: `manifest: manifest belongs to run ${RUN}, not run-other` }],
    });
    assert.throws(
      () => new CheckpointManager(fsStore, 'a/b'),
      /^Error: invalid run id "a\/b": it contains a path separator/,
    );
  });

  it('list: an unreadable manifest as an invalid entry with its reason, and the bytes each checkpoint added', async function () {
    const mgr = new CheckpointManager(fsStore, RUN);
    const a = await mgr.commit(commitInput(10));
    const b = await mgr.commit(commitInput(20, { metrics: { loss: 0.5 } }));
    const broken = 'step-000000015-0badc0de';
    fs.writeFileSync(file(mgr.manifestKey(broken)), '{"formatVersion": 1');
    fs.writeFileSync(file(`${RUN}/manifests/notes.txt`), 'not a manifest');
    fs.mkdirSync(file(`${RUN}/manifests/old`));
    fs.copyFileSync(file(mgr.manifestKey(a.id)), file(`${RUN}/manifests/old/${a.id}.json`));
    await mgr.pin(b.id);
    const list = await mgr.list();
    assert.deepEqual(
      list.map((c) => c.id),
      [a.id, broken, b.id],
    );
    const bad = list[1];
    assert.match(bad.problem!, /^manifest: manifest does not parse \(19 bytes\): /);
    assert.deepEqual(
      { ...bad, problem: undefined },
      {
        id: broken,
        runId: RUN,
        step: 15,
        epoch: -1,
        createdAt: '',
        sizeBytes: 19,
        metrics: {},
        parent: null,
        pinned: false,
        valid: false,
        problem: undefined,
      },
    );
    assert.deepEqual(list[2], {
      id: b.id,
      runId: RUN,
      step: 20,
      epoch: 0,
      createdAt: b.createdAt,
      sizeBytes: 20,
      metrics: { loss: 0.5 },
      parent: null,
      pinned: true,
      valid: null,
      newBytes: 16,
    });
    assert.equal(list[0].newBytes, 20);
    assert.equal(list[0].pinned, false);
    fs.writeFileSync(file(mgr.blobKey(a.blobs[0].sha256)), f32(0, 0, 0, 0));
    const verified = await mgr.list({ verify: true });
    assert.deepEqual(
      verified.map((c) => [c.valid, c.problem]),
      [
        [
          false,
          `blob w: sha256 mismatch: expected ${a.blobs[0].sha256.slice(0, 12)}…, found ${sha256Hex(f32(0, 0, 0, 0)).slice(0, 12)}…`,
        ],
        [false, bad.problem],
        [true, undefined],
      ],
    );
    assert.equal('problem' in verified[2], false);
  });

  it('collectGarbage reports unreferenced blobs and their bytes, spares young ones, and skips while a manifest is unreadable', async function () {
    const old = new CheckpointManager(fsStore, RUN, { blobGcGraceMs: 0 });
    const young = new CheckpointManager(fsStore, RUN);
    const kept = await old.commit(commitInput(1));
    const stray = [f32(1, 2, 3), f32(4)];
    for (const d of stray) await fsStore.writeBlob(old.blobKey(sha256Hex(d)), d);
    const strays = stray
      .map((d) => ({ key: old.blobKey(sha256Hex(d)), size: d.byteLength }))
      .sort((x, y) => (x.key < y.key ? -1 : 1));
    assert.deepEqual(await young.collectGarbage({ apply: true }), { blobs: [], bytes: 0, deleted: 0, young: 2 });
    assert.deepEqual(await old.collectGarbage({ apply: false }), { blobs: strays, bytes: 16, deleted: 0, young: 0 });
    assert.equal((await fsStore.list(`${RUN}/blobs/`)).length, 4);
    const broken = ['step-000000005-0badc0de', 'step-000000006-0badc0de'];
    for (const id of broken) fs.writeFileSync(file(old.manifestKey(id)), '[]');
    const skipped = `unreadable manifest(s) ${broken.join(', ')}: their blobs are unknown`;
    assert.deepEqual(await old.collectGarbage({ apply: true }), { blobs: [], bytes: 0, deleted: 0, skipped, young: 0 });
    assert.deepEqual(await old.applyRetention({ keepLatest: 1 }), {
      deleted: broken,
      kept: [kept.id],
      blobsDeleted: 2,
    });
    assert.deepEqual((await fsStore.list(`${RUN}/blobs/`)).sort(), kept.blobs.map((b) => old.blobKey(b.sha256)).sort());
  });

  it('collectGarbage by age: blobs past the grace period go, younger ones stay; temp files older than a minute are swept', async function () {
    const mgr = new CheckpointManager(fsStore, RUN, { blobGcGraceMs: 10 * 60_000 });
    const kept = await mgr.commit(commitInput(1));
    const age = (p: string, minutes: number) => {
      const t = new Date(Date.now() - minutes * 60_000);
      fs.utimesSync(p, t, t);
    };
    const oldBlob = f32(1, 1);
    const newBlob = f32(2, 2, 2);
    await fsStore.writeBlob(mgr.blobKey(sha256Hex(oldBlob)), oldBlob);
    await fsStore.writeBlob(mgr.blobKey(sha256Hex(newBlob)), newBlob);
    age(file(mgr.blobKey(sha256Hex(oldBlob))), 20);
    age(file(mgr.blobKey(sha256Hex(newBlob))), 5);
    for (const b of kept.blobs) age(file(mgr.blobKey(b.sha256)), 60);
    const tempOld = path.join(root, RUN, 'blobs', '.tmp.a');
    const tempNew = path.join(root, RUN, 'blobs', '.tmp.b');
    fs.writeFileSync(tempOld, 'x');
    fs.writeFileSync(tempNew, 'y');
    age(tempOld, 2);
    age(tempNew, 0.5);
    const fastSweep = new CheckpointManager(fsStore, RUN, { blobGcGraceMs: 0 });
    assert.deepEqual(await fastSweep.collectGarbage({ apply: false }), {
      blobs: [mgr.blobKey(sha256Hex(oldBlob)), mgr.blobKey(sha256Hex(newBlob))]
        .sort()
        .map((key) => ({ key, size: key.endsWith(sha256Hex(oldBlob)) ? 8 : 12 })),
      bytes: 20,
      deleted: 0,
      young: 0,
    });
    assert.deepEqual(await mgr.collectGarbage({ apply: true }), {
      blobs: [{ key: mgr.blobKey(sha256Hex(oldBlob)), size: 8 }],
      bytes: 8,
      deleted: 1,
      young: 1,
    });
    // The sweep waits at least a minute whatever the grace period: a write may still be renaming its temp file.
    assert.deepEqual([fs.existsSync(tempOld), fs.existsSync(tempNew)], [true, true]);
    await fastSweep.collectGarbage({ apply: true });
    assert.deepEqual([fs.existsSync(tempOld), fs.existsSync(tempNew)], [false, true]);
    assert.deepEqual((await fsStore.list(`${RUN}/blobs/`)).sort(), kept.blobs.map((b) => mgr.blobKey(b.sha256)).sort());
  });

  it('steps past 9 digits: list, latestValid and the forged refusal order by step, not by the ids as stored', async function () {
    const keys = new CheckpointKeys([{ id: 'k1', key: new Uint8Array(32).fill(1) }]);
    const mgr = new CheckpointManager(fsStore, RUN, { keys });
    const nine = await mgr.commit(commitInput(999_999_999));
    const ten = await mgr.commit(commitInput(1_000_000_000));
    assert.ok(ten.id < nine.id, 'the store lists the 10-digit id first');
    assert.deepEqual(
      (await mgr.list()).map((c) => c.step),
      [999_999_999, 1_000_000_000],
    );
    assert.equal((await mgr.latestValid())?.manifest.id, ten.id);
    const late = await new CheckpointManager(fsStore, RUN).commit(commitInput(1_000_000_001));
    await assert.rejects(mgr.sign(late.id), (err: Error) =>
      err.message.includes(`(newest signed: ${ten.id} at step 1000000000)`),
    );
  });

  it('manifests and pins are write-once: a different manifest under an existing id is refused, the pin file is {id}', async function () {
    const mgr = new CheckpointManager(fsStore, RUN);
    const m = await mgr.commit(commitInput(1));
    const keys = new CheckpointKeys([{ id: 'k1', key: new Uint8Array(32).fill(1) }]);
    const before = fs.readFileSync(file(mgr.manifestKey(m.id)));
    // Signed, the same content has the same id but other bytes.
    await assert.rejects(new CheckpointManager(fsStore, RUN, { keys }).commit(commitInput(1)), CheckpointConflictError);
    assert.deepEqual(fs.readFileSync(file(mgr.manifestKey(m.id))), before);
    await mgr.pin(m.id);
    await mgr.pin(m.id);
    assert.equal(fs.readFileSync(file(mgr.pinKey(m.id)), 'utf8'), `{"id":"${m.id}"}\n`);
    // load with `only`: just those blobs, and the manifest lists just them.
    const some = await mgr.load(m.id, { only: (name) => name === 'b' });
    assert.deepEqual(
      some.manifest.blobs.map((b) => b.name),
      ['b'],
    );
    assert.deepEqual([...some.blobs.entries()], [['b', f32(0.5)]]);
    assert.equal(some.manifest.id, m.id);
  });

  it('a storage failure while reading a blob propagates: never a missing blob', async function () {
    const mgr = new CheckpointManager(fsStore, RUN);
    const m = await mgr.commit(commitInput(1));
    const down = new StorageUnavailableError('store down', { op: 'read', key: 'k', attempts: 1, retryable: true });
    const failing: CheckpointStore = {
      ...plain,
      read: (k) => (k.includes('/blobs/') ? Promise.reject(down) : plain.read(k)),
    };
    await assert.rejects(new CheckpointManager(failing, RUN).verify(m.id), (err) => err === down);
    await assert.rejects(new CheckpointManager(failing, RUN).latestValid(), (err) => err === down);
  });

  it('collectGarbage re-reads the manifests before deleting: a blob a commit took up meanwhile stays', async function () {
    const mgr = new CheckpointManager(fsStore, RUN, { blobGcGraceMs: 0 });
    await mgr.commit(commitInput(1));
    const reused = f32(5, 6, 7, 8);
    await fsStore.writeBlob(mgr.blobKey(sha256Hex(reused)), reused);
    const stray = f32(9);
    await fsStore.writeBlob(mgr.blobKey(sha256Hex(stray)), stray);
    // Both an hour old: past any grace, so what keeps `reused` is the second reading of the manifests, and what deletes
    // `stray` does not depend on the file times' sub-millisecond part against Date.now() (a file written in the same
    // millisecond as GC's clock reading would otherwise be "younger" than a grace of 0).
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const b of [reused, stray]) fs.utimesSync(file(mgr.blobKey(sha256Hex(b))), hourAgo, hourAgo);
    let late: Manifest | undefined;
    // A commit that publishes right after GC listed the blobs (and after it first read the manifests).
    const racing: CheckpointStore = {
      ...plain,
      async listDetailed(prefix) {
        const out = await plain.listDetailed(prefix);
        if (prefix.endsWith('/blobs/') && !late)
          late = await mgr.commit({
            ...commitInput(2),
            blobs: [{ name: 'w', dtype: 'float32', shape: [4], data: reused }],
          });
        return out;
      },
    };
    const report = await new CheckpointManager(racing, RUN, { blobGcGraceMs: 0 }).collectGarbage({ apply: true });
    assert.deepEqual(
      [report.blobs, report.bytes, report.deleted],
      [[{ key: mgr.blobKey(sha256Hex(stray)), size: 4 }], 4, 1],
    );
    assert.equal(fs.existsSync(file(mgr.blobKey(sha256Hex(reused)))), true);
    assert.deepEqual((await mgr.verify(late!.id)).ok, true);
    // The store has no sweepTemp: nothing to sweep, no error. Another run's temp files are never swept.
    const otherTemp = path.join(root, 'run-other', 'blobs', '.tmp.x');
    fs.mkdirSync(path.dirname(otherTemp), { recursive: true });
    fs.writeFileSync(otherTemp, 'x');
    const t = new Date(Date.now() - 3_600_000);
    fs.utimesSync(otherTemp, t, t);
    assert.deepEqual(await new CheckpointManager(plain, RUN, { blobGcGraceMs: 0 }).collectGarbage({ apply: true }), {
      blobs: [],
      bytes: 0,
      deleted: 0,
      young: 0,
    });
    await mgr.collectGarbage({ apply: true });
    assert.equal(fs.existsSync(otherTemp), true);
  });

  it("retention's verify modes: quick checks presence and size, auto re-hashes up to 16 MiB and checks larger ones by size", async function () {
    this.timeout(60_000);
    const quick = new CheckpointManager(fsStore, RUN, { retentionVerify: 'quick', blobGcGraceMs: 0 });
    const a = await quick.commit(commitInput(1));
    const b = await quick.commit(commitInput(2));
    fs.writeFileSync(file(quick.blobKey(b.blobs[0].sha256)), f32(2, 1, 2));
    assert.deepEqual((await quick.applyRetention({ keepLatest: 1 })).deleted, [b.id]);
    const c = await quick.commit(commitInput(3));
    fs.rmSync(file(quick.blobKey(c.blobs[0].sha256)));
    assert.deepEqual((await quick.applyRetention({ keepLatest: 1 })).deleted, [c.id]);
    assert.deepEqual(
      (await quick.list()).map((x) => x.id),
      [a.id],
    );

    const auto = new CheckpointManager(fsStore, 'run-big', { blobGcGraceMs: 0 });
    const big = (step: number, floats: number) => {
      const data = new Uint8Array(floats * 4).fill(step);
      return auto.commit({ ...commitInput(step), blobs: [{ name: 'w', dtype: 'float32', shape: [floats], data }] });
    };
    const flip = (m: Manifest) => {
      const f = file(auto.blobKey(m.blobs[0].sha256));
      const d = fs.readFileSync(f);
      d[0] ^= 1;
      fs.writeFileSync(f, d);
    };
    const base = await big(1, 4);
    const atLimit = await big(2, 4 * 2 ** 20);
    flip(atLimit);
    assert.deepEqual((await auto.applyRetention({ keepLatest: 1 })).kept, [base.id]);
    const over = await big(3, 4 * 2 ** 20 + 1);
    flip(over);
    assert.deepEqual((await auto.applyRetention({ keepLatest: 1 })).kept, [over.id]);
  });

  it('applyRetention: no rule keeps everything; a damaged newest checkpoint is deleted and the newest valid kept', async function () {
    const mgr = new CheckpointManager(fsStore, RUN, { blobGcGraceMs: 0 });
    const ids = [];
    for (const step of [1, 2, 3]) ids.push((await mgr.commit(commitInput(step))).id);
    assert.deepEqual(await mgr.applyRetention({}), { deleted: [], kept: [...ids].sort(), blobsDeleted: 0 });
    fs.writeFileSync(file(mgr.manifestKey('step-000000004-0badc0de')), 'x');
    const res = await mgr.applyRetention({}, []);
    assert.equal(res.gcSkipped, 'unreadable manifest(s) step-000000004-0badc0de: their blobs are unknown');
    fs.rmSync(file(mgr.manifestKey('step-000000004-0badc0de')));
    // Same size, other bytes: 'quick' only checks sizes and keeps it as latest; 'full' and 'auto' (small) re-hash.
    const newest = await mgr.readManifest(ids[2]);
    fs.writeFileSync(file(mgr.blobKey(newest.blobs[0].sha256)), f32(9, 9, 9, 9));
    const quick = new CheckpointManager(fsStore, RUN, { retentionVerify: 'quick', blobGcGraceMs: 0 });
    assert.deepEqual(await quick.applyRetention({ keepLatest: 1 }, [ids[0]]), {
      deleted: [ids[1]],
      kept: [ids[0], ids[2]],
      blobsDeleted: 1,
    });
    const full = new CheckpointManager(fsStore, RUN, { retentionVerify: 'full', blobGcGraceMs: 0 });
    assert.deepEqual(await full.applyRetention({ keepLatest: 1 }), {
      deleted: [ids[2]],
      kept: [ids[0]],
      blobsDeleted: 1,
    });
    await assert.rejects(mgr.applyRetention({ keepLatest: -1 }), {
      message: 'retention keepLatest must be a non-negative integer, got -1',
    });
  });
});
