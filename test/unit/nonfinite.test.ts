// Non-finite values stop a run cleanly (in process: real trainer, real filesystem store, MockActivityEnvironment): a
// loss that diverges to NaN or Infinity fails the chunk non-retryably naming the step, the learning rate and the cause;
// no checkpoint with a non-finite weight is committed, so the newest checkpoint is the last finite one and training
// continues from it at a lower rate. Values beyond float32 are refused when the data is read, naming row and column.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { commitTrainer } from '../../activities/commit';
import { FailureKinds } from '../../activities/failures';
import { createActivities } from '../../activities';
import type { ChunkSummary, TrainChunkInput } from '../../activities/types';
import { CheckpointManager, openStore } from '../../checkpoint';
import { validateSpec, type RunSpec } from '../../spec';
import { Trainer } from '../../training';
import { initBackend } from '../../training/backend';
import { clearDataCache, loadData, type DataSpec } from '../../training/data';
import { TrainingMetrics } from '../../activities/metrics';

describe('non-finite values stop a run cleanly', function () {
  this.timeout(120_000);
  let dir: string;
  let spec: RunSpec;
  const runId = 'diverging';

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-nan-'));
    // Targets near 1e3 and an SGD rate of 10 diverge in a few steps; at 1e-4 training is calm.
    const rows = ['a,b,y'];
    for (let i = 0; i < 64; i++) rows.push(`${i % 7},${(i * 13) % 11},${1000 + ((i * 37) % 100)}`);
    fs.writeFileSync(path.join(dir, 'r.csv'), rows.join('\n') + '\n');
    spec = validateSpec({
      model: {
        layers: [
          { type: 'dense', units: 4, activation: 'relu' },
          { type: 'dense', units: 1 },
        ],
      },
      dataset: { format: 'csv', path: `file://${dir}/r.csv`, label: 'y', testFraction: 0.25 },
      task: 'regression',
      epochs: 50,
      batchSize: 8,
      chunkSteps: 2,
      seed: 3,
      optimizer: { name: 'sgd', learningRate: 0.0001 },
      checkpoint: { storage: `file://${dir}/ck` },
    });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the trainer refuses a non-finite loss before the update, naming step and learning rate', async () => {
    const trainer = await Trainer.create(spec);
    try {
      trainer.setLearningRate(10);
      let lastFinite = -1;
      await assert.rejects(
        trainer.train({ maxSteps: 400, onStep: (p) => void (lastFinite = p.step) }),
        (err: Error) => {
          assert.equal(err.name, 'NonFiniteError');
          assert.match(err.message, new RegExp(`at step ${lastFinite + 1} \\(learning rate 10\\)`));
          assert.match(err.message, /learning rate too high/);
          return true;
        },
      );
      // Nothing of the failed step was applied: the trainer still holds the last finite step, usable.
      assert.equal(trainer.state.step, lastFinite);
      assert.doesNotThrow(() => trainer.snapshot());
    } finally {
      trainer.dispose();
    }
  });

  it('a snapshot holding a NaN weight is refused before any commit, naming the tensor', async () => {
    const trainer = await Trainer.create(spec);
    try {
      const snap = trainer.snapshot();
      const kernel = snap.tensors.find((t) => t.name.endsWith('/kernel'))!;
      new DataView(kernel.data.buffer, kernel.data.byteOffset).setFloat32(8, NaN, true);
      assert.throws(
        () => Trainer.checkFinite(snap),
        new RegExp(`${kernel.name.replace('/', '\\/')}\\[2\\] is NaN at step 0`),
      );
      // commitTrainer checks the live weights: a finite trainer commits.
      const manager = new CheckpointManager(openStore(spec.checkpoint.storage, dir), 'finite-only');
      const m = await commitTrainer(manager, trainer, {
        backend: await initBackend(),
        specHash: 'x',
        parent: null,
        reason: 'test',
      });
      assert.equal(m.step, 0);
    } finally {
      trainer.dispose();
    }
  });

  it('trainChunk fails non-retryably; the newest checkpoint is the last finite one and a lower rate continues', async () => {
    const acts = createActivities({ baseDir: dir, warmRuns: 0, metrics: new TrainingMetrics() });
    const chunk = (input: Partial<TrainChunkInput>): Promise<ChunkSummary> =>
      new MockActivityEnvironment().run(acts.trainChunk, { runId, spec, from: null, steps: 2, ...input });
    const first = await chunk({});
    assert.equal(first.step, 2);
    await assert.rejects(chunk({ from: first.checkpoint, steps: 400, learningRateOverride: 10 }), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, FailureKinds.NonFinite);
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, /at step \d+ \(learning rate 10\): training diverged/);
      return true;
    });
    const manager = new CheckpointManager(openStore(spec.checkpoint.storage, dir), runId);
    const newest = await manager.latestValid();
    assert.equal(newest!.manifest.id, first.checkpoint.id);
    const next = await chunk({ from: first.checkpoint, steps: 2, learningRateOverride: 0.00005 });
    assert.equal(next.step, 4);
    assert.ok(Number.isFinite(next.loss));
  });
});

describe('values beyond float32 are refused when read', function () {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-f32-'));
    clearDataCache();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const load = (spec: DataSpec) => loadData(spec, { seed: 1, baseDir: dir });
  const write = (name: string, content: string | Uint8Array) => {
    fs.writeFileSync(path.join(dir, name), content);
    return `file://${name}`;
  };

  it('a CSV cell of 1e39 (finite in float64) names its line and column, not its value', async () => {
    const p = write('big.csv', 'a,b,label\n1,2,x\n3,1e39,y\n');
    await assert.rejects(load({ format: 'csv', path: p, label: 'label' }), (err: Error) => {
      assert.equal(err.name, 'DatasetError');
      assert.match(err.message, /column "b" at line 3 of file:\/\/big\.csv is beyond float32's range/);
      assert.doesNotMatch(err.message, /1e39/);
      return true;
    });
  });

  it('a regression target of -1e39 in a CSV file is refused naming its line', async () => {
    const p = write('t.csv', 'a,y\n1,2\n3,-1e39\n');
    await assert.rejects(
      load({ format: 'csv', path: p, label: 'y', task: 'regression' } as DataSpec),
      /"y" at line 3 of file:\/\/t\.csv is beyond float32's range/,
    );
  });

  it('a JSONL field of 1e39 names its line and field; a JSONL file with a byte order mark reads', async () => {
    const p = write('big.jsonl', '{"a":1,"label":"x"}\n{"a":1e39,"label":"y"}\n');
    await assert.rejects(
      load({ format: 'jsonl', path: p, label: 'label' }),
      /field "a" at line 2 of file:\/\/big\.jsonl is beyond float32's range/,
    );
    const q = write('bom.jsonl', '\ufeff{"a":1,"label":"x"}\n{"a":2,"label":"y"}\n{"a":3,"label":"x"}\n');
    const data = await load({ format: 'jsonl', path: q, label: 'label', testFraction: 0.34 });
    assert.equal(data.train.n + data.test.n, 3);
  });

  it('an IDX float32 file holding NaN is refused naming the example', async () => {
    const x = new Uint8Array(4 + 8 + 2 * 2 * 4);
    const view = new DataView(x.buffer);
    x[2] = 0x0d;
    x[3] = 2;
    view.setUint32(4, 2, false);
    view.setUint32(8, 2, false);
    [0.5, 1, 2, NaN].forEach((v, i) => view.setFloat32(12 + 4 * i, v, false));
    const y = new Uint8Array([0, 0, 8, 1, 0, 0, 0, 2, 0, 1]);
    write('x.idx', x);
    write('y.idx', y);
    await assert.rejects(
      load({ format: 'idx', path: 'file://x.idx', label: 'file://y.idx' }),
      /file:\/\/x\.idx: example 1, value 1 is not a finite number/,
    );
  });
});
