// Untrusted run ids and checkpoint ids, generated (fast-check), path-like on purpose ('..', '/', '\', NUL, unicode,
// very long): the one id rule accepts only single safe path segments; the checkpoint layer accepts exactly what it
// accepts, refuses the rest with a message naming the id, and never touches a file outside its store.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import {
  CheckpointManager,
  CheckpointNotFoundError,
  FsCheckpointStore,
  StorageUnavailableError,
  type CommitInput,
} from '../../checkpoint';
import { idProblem, InvalidIdError, MAX_ID_LENGTH, validateCheckpointId, validateRunId } from '../../spec/ids';

/** Strings built to escape a directory: separators, traversal, NUL and other controls, unicode look-alikes. */
const pathLike = fc
  .array(
    fc.oneof(
      fc.constantFrom('..', '.', '/', '\\', '\u0000', '\n', '%2f', '\u2215', '\uff0e\uff0e', 'é', '\u202e', '~', ''),
      fc.constantFrom('step-000000001-0123abcd', 'run', 'etc', 'passwd', '-', '_', '.tmp.x'),
      fc.string({ unit: 'binary', maxLength: 6 }),
    ),
    { maxLength: 8 },
  )
  .map((parts) => parts.join(''));
const ids = fc.oneof(
  pathLike,
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('a', '.', '-', '_', '/', '0'), maxLength: 12 }),
  fc.nat(400).map((n) => 'a'.repeat(n)),
  fc.constantFrom('.', '..', '...', '-x', '_x', '.x', 'x.', 'a/b', '/abs', 'C:\\x', 'con', '.tmp.x'),
);

/**
 * The documented rule, written out independently of spec/ids.ts (a mutation there must not move this oracle too):
 * 1 to 200 characters, letters, digits, '-', '_' and '.', not starting with '.'.
 */
const followsIdRule = (id: string) => id.length >= 1 && id.length <= 200 && /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(id);

/** The id is one plain segment: joined under a root it names a direct child of that root. */
function assertSafeSegment(id: string) {
  assert.ok(id.length >= 1 && id.length <= MAX_ID_LENGTH, JSON.stringify(id));
  assert.match(id, /^[A-Za-z0-9._-]+$/);
  assert.ok(id !== '.' && id !== '..' && !id.startsWith('.'), JSON.stringify(id));
  assert.equal(path.dirname(path.join('/root', id)), '/root');
}

function input(step: number): CommitInput {
  return {
    step,
    epoch: 0,
    createdAt: '2026-01-01T00:00:00.000Z',
    parent: null,
    blobs: [{ name: 'w', dtype: 'float32', shape: [1], data: new Uint8Array(4) }],
    state: null,
    metrics: {},
    fingerprints: {},
    backend: { name: 'cpu', version: '1' },
  };
}

/** Every file under dir, relative, sorted. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();
}

describe('property: untrusted run and checkpoint ids', function () {
  this.timeout(300_000);

  it('the id rule accepts only safe path segments and refuses the rest naming the id', function () {
    fc.assert(
      fc.property(ids, (id) => {
        const problem = idProblem(id);
        for (const [check, kind] of [
          [validateRunId, 'run id'],
          [validateCheckpointId, 'checkpoint id'],
        ] as const) {
          try {
            assert.equal(check(id), id);
          } catch (err) {
            assert.ok(err instanceof InvalidIdError, String(err));
            assert.ok(err.message.startsWith(`invalid ${kind} `), err.message);
            assert.ok(err.message.length < 400 && !err.message.includes('\u0000'), JSON.stringify(err.message));
            // Refused only when it breaks the rule: a good id (with '_', or 150 characters long) is never refused.
            assert.ok(!followsIdRule(id), `a valid ${kind} was refused: ${JSON.stringify(id)} (${err.message})`);
            assert.notEqual(problem, null);
            continue;
          }
          assert.equal(problem, null);
          assert.ok(followsIdRule(id), JSON.stringify(id));
          assertSafeSegment(id);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('non-strings are refused by the id rule, not crashed on', function () {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.constantFrom(undefined, Symbol('x'), () => 1, 10n),
        ),
        (v) => {
          if (typeof v === 'string') return;
          assert.throws(() => validateRunId(v), InvalidIdError);
        },
      ),
      // Found by a run of this property: an object whose toString is not callable crashed the error message.
      { numRuns: 300, examples: [[{ toString: 0 }], [Object.create(null)]] },
    );
  });

  it('the checkpoint manager accepts exactly the run ids the rule accepts, and stays inside its store', async function () {
    const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-prop-ids-'));
    const root = path.join(sandbox, 'store');
    fs.mkdirSync(root);
    fs.writeFileSync(path.join(sandbox, 'outside'), 'must stay untouched');
    const store = new FsCheckpointStore(root);
    try {
      await fc.assert(
        fc.asyncProperty(ids, pathLike, async (runId, ckpt) => {
          let mgr: CheckpointManager;
          try {
            mgr = new CheckpointManager(store, runId);
          } catch (err) {
            assert.notEqual(idProblem(runId), null, `manager refused ${JSON.stringify(runId)}: ${String(err)}`);
            assert.ok(err instanceof Error && !(err instanceof TypeError), String(err));
            assert.match(err.message, /^invalid run id /);
            return;
          }
          assert.equal(idProblem(runId), null, `manager accepted ${JSON.stringify(runId)}`);
          const m = await mgr.commit(input(1));
          assert.equal((await mgr.load(m.id)).manifest.runId, runId);
          // Hostile checkpoint ids: not found (named), never another file, never a storage outage.
          for (const op of [
            () => mgr.load(ckpt),
            () => mgr.readManifest(ckpt),
            () => mgr.pin(ckpt),
            () => mgr.verify(ckpt).then((v) => assert.equal(v.ok, false)),
            () => mgr.unpin(ckpt),
          ]) {
            await op().then(
              () => undefined,
              (err: unknown) => {
                assert.ok(!(err instanceof StorageUnavailableError), String(err));
                assert.ok(err instanceof CheckpointNotFoundError, String(err));
              },
            );
          }
        }),
        { numRuns: 300 },
      );
      assert.deepEqual(
        filesUnder(sandbox).filter((f) => !f.startsWith(`store${path.sep}`)),
        ['outside'],
      );
      assert.equal(fs.readFileSync(path.join(sandbox, 'outside'), 'utf8'), 'must stay untouched');
      for (const f of filesUnder(root)) {
        const [run, kind] = f.split(path.sep);
        assert.equal(idProblem(run), null, f);
        assert.ok(['blobs', 'manifests', 'pins'].includes(kind), f);
      }
    } finally {
      fs.rmSync(sandbox, { recursive: true, force: true });
    }
  });

  it('regressions: an over-long checkpoint id is not found (not a storage outage); the store takes every valid run id', async function () {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-prop-long-'));
    try {
      const mgr = new CheckpointManager(new FsCheckpointStore(root), 'run');
      await mgr.commit(input(1));
      const long = `step-${'0'.repeat(300)}-0123abcd`;
      await assert.rejects(mgr.load(long), CheckpointNotFoundError);
      await assert.rejects(mgr.pin(long), CheckpointNotFoundError);
      assert.equal((await mgr.verify(long)).ok, false);
      // The id rule lets '_' and '-' start a run id; the store used to refuse them with its own stricter rule.
      for (const runId of ['_x', '-x'])
        assert.equal((await new CheckpointManager(mgr.store, runId).commit(input(1))).runId, runId);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
