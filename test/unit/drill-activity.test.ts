// The drill activity in process (real trainer, real filesystem store, MockActivityEnvironment): a replay across a
// learning-rate change made with set-lr is verified (the change is applied where the run applied it); a damaged
// restored checkpoint fails the drill naming its blob; a drill writes nothing; refusals carry their failure type.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { commitTrainer } from '../../activities/commit';
import { createDrillActivities } from '../../activities/drill';
import { DrillFailureTypes, type DrillInput, type DrillReport } from '../../activities/drill-types';
import { specHash } from '../../activities/fingerprint';
import { FailureTypes } from '../../activities/types';
import { CheckpointManager, openStore, type Manifest } from '../../checkpoint';
import { validateSpec, type RunSpec } from '../../spec';
import { Trainer } from '../../training';
import { initBackend } from '../../training/backend';

describe('drill activity: replay a stored run in a fresh trainer (in process)', function () {
  this.timeout(300_000);
  let dir: string;
  let spec: RunSpec;
  const ck: Manifest[] = [];
  const runId = 'drilled';
  const reports: DrillReport[] = [];

  const listing = () =>
    fs
      .readdirSync(path.join(dir, runId), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name))
      .sort();
  const runDrill = (input: Partial<DrillInput> = {}): Promise<DrillReport> =>
    new MockActivityEnvironment().run(
      createDrillActivities({ baseDir: dir, onReport: (r) => reports.push(r) }).runDrill,
      {
        runId,
        spec,
        ...input,
      },
    );

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-drill-'));
    spec = validateSpec({
      model: 'mnist-mlp',
      dataset: { name: 'mnist', trainLimit: 300, testLimit: 50 },
      epochs: 2,
      batchSize: 50,
      chunkSteps: 3,
      seed: 5,
      dropout: 0.1,
      optimizer: { name: 'adam', learningRate: 0.003 },
      checkpoint: { storage: `file://${dir}` },
    });
    // A run as trainChunk makes it: chunks of 3 steps, each ending in a commit; set-lr before the second chunk.
    const backend = await initBackend();
    const manager = new CheckpointManager(openStore(spec.checkpoint.storage, dir), runId);
    const trainer = await Trainer.create(spec);
    try {
      let parent: Manifest | null = null;
      for (const lr of [null, 0.0005, null]) {
        if (lr !== null) trainer.setLearningRate(lr);
        await trainer.train({ maxSteps: 3 });
        parent = await commitTrainer(manager, trainer, {
          backend,
          specHash: specHash(spec),
          parent: parent && { runId, id: parent.id },
          reason: 'chunk-end',
        });
        ck.push(parent);
      }
    } finally {
      trainer.dispose();
    }
  });
  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('verifies the newest pair (second-newest restored, newest compared) and writes nothing', async function () {
    const before = listing();
    const r = await runDrill();
    assert.equal(r.verified, true, JSON.stringify(r.differences));
    assert.deepEqual(r.checkpoint, { id: ck[1].id, step: 6 });
    assert.deepEqual(r.compared, { id: ck[2].id, step: 9 });
    assert.equal(r.stepsReplayed, 3);
    assert.equal(r.blobsCompared, ck[2].blobs.length);
    assert.equal(r.specChanged, false);
    assert.deepEqual(listing(), before);
    assert.deepEqual(reports.at(-1), r, 'the worker hears of every report (metrics)');
  });

  it('a replay across a set-lr applies it where the run did, and is verified', async function () {
    const r = await runDrill({ checkpointId: ck[0].id });
    assert.equal(r.verified, true, JSON.stringify(r.differences));
    assert.deepEqual(r.compared, { id: ck[1].id, step: 6 });
  });

  it('a changed spec replays to other numbers: the drill fails, names what differs and says the spec changed', async function () {
    const other = validateSpec({ ...spec, augment: { shift: 1 } });
    const r = await runDrill({ spec: other });
    assert.equal(r.verified, false);
    assert.equal(r.specChanged, true);
    assert.ok(r.differences.some((d) => d.name.startsWith('model/') && /element \d+ differs/.test(d.reason)));
  });

  it('refusals carry their type: unknown checkpoint, nothing later, --steps out of range', async function () {
    const typeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (err: unknown) => (err instanceof ApplicationFailure ? err.type : String(err)),
      );
    assert.equal(await typeOf(runDrill({ checkpointId: 'step-000000001-00000000' })), FailureTypes.CheckpointNotFound);
    assert.equal(await typeOf(runDrill({ checkpointId: ck[2].id })), DrillFailureTypes.NoLaterCheckpoint);
    assert.equal(await typeOf(runDrill({ checkpointId: ck[0].id, steps: 2 })), DrillFailureTypes.NoLaterCheckpoint);
    assert.equal(await typeOf(runDrill({ steps: 4 })), FailureTypes.InvalidSpec);
  });

  it('a damaged restored checkpoint fails the drill naming its blob (the default passes over it)', async function () {
    const blob = ck[1].blobs.find((b) => b.name.startsWith('model/'))!;
    const file = path.join(dir, runId, 'blobs', blob.sha256);
    const bytes = fs.readFileSync(file);
    bytes[0] ^= 0x80;
    fs.writeFileSync(file, bytes);
    const asked = await runDrill({ checkpointId: ck[1].id });
    assert.equal(asked.verified, false);
    assert.deepEqual(
      asked.differences.map((d) => [d.checkpointId, d.name]),
      [[ck[1].id, blob.name]],
    );
    assert.match(asked.differences[0].reason, /sha256 mismatch/);
    // By default the newest intact checkpoint with a later one is drilled, and the damaged one is reported as skipped.
    const dflt = await runDrill();
    assert.equal(dflt.checkpoint?.id, ck[0].id);
    assert.equal(dflt.compared?.id, ck[1].id);
    assert.equal(dflt.verified, false, 'the compared checkpoint is the damaged one');
    assert.deepEqual(
      dflt.skipped.map((s) => s.id),
      [ck[1].id],
    );
  });
});
