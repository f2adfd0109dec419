// Round checkpoints held in memory for replicas' restarts (activities/held-rounds.ts): a held checkpoint is handed out
// with only the wanted blobs, each checked against the manifest's sha256; a byte changed in memory since is caught
// (null: the replica reads the store); a checkpoint not held, or not readable, gives null; at most two are kept, and
// none longer than its idle time.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointManager, FsCheckpointStore } from '../../checkpoint';
import { commitInput, f32 } from '../helpers/commit-input';
import { HeldRounds } from '../../activities/held-rounds';
import type { RunSpec } from '../../spec/types';

/** A round checkpoint: the run's weight and one replica's slot. */
const input = (step: number) =>
  commitInput(step, {
    blobs: [
      { name: 'w', dtype: 'float32', shape: [2, 2], data: f32(step, 1, 2, 3) },
      { name: 'dist/replica-1/m', dtype: 'float32', shape: [1], data: f32(0.5) },
    ],
  });

describe('round checkpoints held in memory', function () {
  let dir: string;
  let manager: CheckpointManager;
  const spec = {} as RunSpec;
  let held: HeldRounds;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-held-rounds-'));
    manager = new CheckpointManager(new FsCheckpointStore(dir), 'run');
    held = new HeldRounds();
    held.bind(() => manager);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('hands out the wanted blobs of a held round, checked against its manifest', async () => {
    const m = await manager.commit(input(4));
    const ref = { runId: 'run', id: m.id };
    assert.equal(await held.take(ref, () => true), null, 'not held yet');
    held.hold(spec, ref);
    assert.equal(held.has(ref), true);
    const all = await held.take(ref, () => true);
    assert.deepEqual(all?.manifest.blobs.map((b) => b.name).sort(), ['dist/replica-1/m', 'w']);
    assert.deepEqual(all?.blobs.get('w'), f32(4, 1, 2, 3));
    const some = await held.take(ref, (name) => !name.startsWith('dist/'));
    assert.deepEqual([...(some?.blobs.keys() ?? [])], ['w']);
    assert.deepEqual(
      some?.manifest.blobs.map((b) => b.name),
      ['w'],
      'the manifest lists what was taken, as load({only}) does',
    );
  });

  it('a byte changed in memory since is caught, and the round is no longer held', async () => {
    const m = await manager.commit(input(4));
    const ref = { runId: 'run', id: m.id };
    held.hold(spec, ref);
    const first = await held.take(ref, () => true);
    first!.blobs.get('w')![0] ^= 1;
    assert.equal(await held.take(ref, () => true), null);
    assert.equal(held.has(ref), false);
  });

  it('a checkpoint that cannot be read is not handed out; two rounds are kept at most', async () => {
    const missing = { runId: 'run', id: 'step-000000009-00000000' };
    held.hold(spec, missing);
    assert.equal(await held.take(missing, () => true), null);
    const refs = [];
    for (const step of [1, 2, 3]) {
      const m = await manager.commit(input(step));
      refs.push({ runId: 'run', id: m.id });
      held.hold(spec, refs[refs.length - 1]);
    }
    assert.deepEqual(
      refs.map((r) => held.has(r)),
      [false, true, true],
    );
    // Used again, the older of the two is the newest: the next round to be held makes the other one go.
    assert.ok(await held.take(refs[1], () => true));
    refs.push({ runId: 'run', id: (await manager.commit(input(4))).id });
    held.hold(spec, refs[3]);
    assert.deepEqual(
      refs.map((r) => held.has(r)),
      [false, true, false, true],
    );
  });

  it('lets a held round go once it has been unused for its idle time; holding or taking it again restarts that time', async () => {
    const idle = new HeldRounds(300);
    idle.bind(() => manager);
    const ref = { runId: 'run', id: (await manager.commit(input(4))).id };
    idle.hold(spec, ref);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(await idle.take(ref, () => true), 'taken within its idle time');
    await new Promise((r) => setTimeout(r, 200));
    idle.hold(spec, ref); // held again: its time starts over
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(idle.has(ref), true, '400 ms after the first hold, 200 ms after the last use');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(idle.has(ref), false, 'let go after 300 ms unused');
    assert.equal(await idle.take(ref, () => true), null);
  });
});
