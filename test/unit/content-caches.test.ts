// Warm caches serve what the files hold now: an edit that keeps a file's size and modification time (weights.bin of a
// model.json, a paused run's CSV) is seen by the model loader, the dataset cache and a warm trainer, exactly as a cold
// worker sees it. In process: real files, real trainer, MockActivityEnvironment.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../../activities';
import { TrainingMetrics } from '../../activities/metrics';
import { FailureTypes, type ChunkSummary, type TrainChunkInput } from '../../activities/types';
import { validateSpec } from '../../spec';
import { clearDataCache, loadData } from '../../training/data';
import { initBackend } from '../../training/backend';
import { loadTfjsModel } from '../../training/tfjs-model';

/** Rewrites `file` with `content` (same length) and puts back the modification time it had. */
function editKeepingSizeAndTime(file: string, content: string | Uint8Array): void {
  const before = fs.statSync(file);
  fs.writeFileSync(file, content);
  assert.equal(fs.statSync(file).size, before.size);
  fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
  assert.equal(fs.statSync(file).mtimeMs, before.mtimeMs);
}

describe('warm caches are keyed on content', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-cache-'));
    clearDataCache();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function saveModel(): Promise<string> {
    await initBackend();
    const model = tf.sequential({ layers: [tf.layers.dense({ name: 'd', inputShape: [2], units: 2 })] });
    model.setWeights([tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor1d([5, 6])]);
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(a.weightData as ArrayBuffer));
        const json = {
          format: a.format,
          modelTopology: a.modelTopology,
          weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
        };
        fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    model.dispose();
    for (const f of ['model.json', 'weights.bin']) fs.utimesSync(path.join(dir, f), 1_700_000_000, 1_700_000_000);
    return 'file://model.json';
  }
  const bias = async (url: string) => {
    const { model } = await loadTfjsModel(url, dir);
    const b = Array.from(model.getWeights()[1].dataSync());
    model.dispose();
    return b;
  };

  it('a weights.bin replaced by one of the same size and time gives the new weights', async () => {
    const url = await saveModel();
    assert.deepEqual(await bias(url), [5, 6]);
    const w = path.join(dir, 'weights.bin');
    const bytes = new Float32Array([1, 2, 3, 4, 7, 8]);
    editKeepingSizeAndTime(w, new Uint8Array(bytes.buffer));
    assert.deepEqual(await bias(url), [7, 8]);
  });

  it('a weights.bin with extra trailing bytes is refused', async () => {
    const url = await saveModel();
    fs.appendFileSync(path.join(dir, 'weights.bin'), Buffer.alloc(4));
    await assert.rejects(loadTfjsModel(url, dir), /weight files hold 28 bytes, its weights manifest describes 24/);
  });

  it('a CSV edited to the same size and time gives a new fingerprint and the new rows', async () => {
    const file = path.join(dir, 'd.csv');
    fs.writeFileSync(file, 'a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n');
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
    const spec = { format: 'csv' as const, path: 'file://d.csv', label: 'label', testFraction: 0.25 };
    const first = await loadData(spec, { seed: 1, baseDir: dir });
    editKeepingSizeAndTime(file, 'a,b,label\n1,2,x\n3,4,y\n5,9,x\n7,8,y\n');
    const second = await loadData(spec, { seed: 1, baseDir: dir });
    assert.notEqual(second.fingerprint, first.fingerprint);
    // Unchanged bytes are a hit: the same decoded object.
    assert.equal(await loadData(spec, { seed: 1, baseDir: dir }), second);
  });

  it('a resume on a warm worker refuses a CSV edited while the run was paused, as a cold worker does', async () => {
    const file = path.join(dir, 'd.csv');
    const rows = ['a,b,label'];
    for (let i = 0; i < 40; i++) rows.push(`${i % 5},${(i * 3) % 7},${i % 2 ? 'x' : 'y'}`);
    fs.writeFileSync(file, rows.join('\n') + '\n');
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
    const spec = validateSpec({
      model: { layers: [{ type: 'dense', units: 2 }] },
      dataset: { format: 'csv', path: `file://${file}`, label: 'label', testFraction: 0.25 },
      epochs: 3,
      batchSize: 10,
      chunkSteps: 2,
      seed: 2,
      optimizer: { name: 'sgd', learningRate: 0.1 },
      checkpoint: { storage: `file://${dir}/ck` },
    });
    fs.mkdirSync(path.join(dir, 'ck')); // a run's store exists once prepareRun has probed it
    const acts = createActivities({ baseDir: dir, warmRuns: 2, metrics: new TrainingMetrics() });
    const chunk = (input: Partial<TrainChunkInput>): Promise<ChunkSummary> =>
      new MockActivityEnvironment().run(acts.trainChunk, { runId: 'warm', spec, from: null, steps: 2, ...input });
    const first = await chunk({});
    rows[3] = rows[3].replace(/^\d/, (d) => String((Number(d) + 1) % 10));
    editKeepingSizeAndTime(file, rows.join('\n') + '\n');
    await assert.rejects(chunk({ from: first.checkpoint }), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, FailureTypes.ResumeGuard);
      assert.match(err.message, /was trained on different data/);
      return true;
    });
  });
});
