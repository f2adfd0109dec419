// `export` and `report` against a real dev server and a real worker process: the exported model loads in
// stock tfjs and predicts what our own restore predicts; the report is a self-contained page and a real PNG.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { CheckpointManager, openStore, type Manifest } from '../../checkpoint';
import { validateSpec, type RunSpec } from '../../spec';
import { loadDataset, Trainer, type NamedTensorBytes, type TrainerState } from '../../training';
import { IMAGE_HEIGHT, IMAGE_SIZE, IMAGE_WIDTH } from '../../training/datasets';
import { Net } from '../../training/models';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { decodePng as readPng } from '../ui/png-inspect';
import {
  cli,
  spawnWorker,
  startCluster,
  tmpDir,
  waitFor,
  writeSpec,
  type TestCluster,
  type WorkerProcess,
} from '../helpers/cluster';
import { chunkProgressed, TEST_HEARTBEAT_S } from '../helpers/fixtures';

/** temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED (proto is not a direct dependency). */
const PENDING_ACTIVITY_STATE_STARTED = 2;

const mlp = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 600, testLimit: 200, validationFraction: 0 },
  epochs: 2,
  batchSize: 50,
  chunkSteps: 5,
  seed: 21,
  optimizer: { name: 'adam', learningRate: 0.003 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 10 },
};

// A CNN long enough (3 chunks of ~3 s) for a worker to be killed inside a chunk.
const cnn = {
  model: 'mnist-cnn',
  dataset: { name: 'mnist', trainLimit: 3840, testLimit: 200, validationFraction: 0 },
  epochs: 1,
  batchSize: 32,
  chunkSteps: 40,
  seed: 8,
  optimizer: { name: 'adam', learningRate: 0.001 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 10 },
  heartbeatTimeoutSeconds: TEST_HEARTBEAT_S,
};

/** A minimal file:// load router for stock @tensorflow/tfjs (which ships none for Node). */
function fileLoadHandler(url: string): tf.io.IOHandler {
  const file = fileURLToPath(url);
  return {
    async load() {
      const modelJson = JSON.parse(fs.readFileSync(file, 'utf8')) as tf.io.ModelJSON;
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: Buffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) buffers.push(fs.readFileSync(path.resolve(path.dirname(file), p)));
        }
        const all = Buffer.concat(buffers);
        return [specs, all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength)];
      });
    },
  };
}

function snapshotOf(loaded: { manifest: Manifest; blobs: Map<string, Uint8Array> }) {
  return {
    tensors: loaded.manifest.blobs.map((b): NamedTensorBytes => ({
      name: b.name,
      dtype: b.dtype as NamedTensorBytes['dtype'],
      shape: b.shape,
      data: loaded.blobs.get(b.name)!,
    })),
    state: loaded.manifest.state as TrainerState,
  };
}

function testImages(spec: RunSpec, n: number): tf.Tensor4D {
  const data = loadDataset(spec.dataset);
  return tf.tensor4d(data.test.images.slice(0, n * IMAGE_SIZE), [n, IMAGE_HEIGHT, IMAGE_WIDTH, 1]);
}

/** Class probabilities from our own restore of a checkpoint: Trainer.fromSnapshot, then our forward pass. */
async function oursPredict(
  spec: RunSpec,
  manager: CheckpointManager,
  id: string,
  x: tf.Tensor4D,
): Promise<Float32Array> {
  const trainer = await Trainer.fromSnapshot(spec, snapshotOf(await manager.load(id)));
  try {
    const net = new Net(String(spec.model), spec.dropout ?? 0, trainer.layersModel as tf.Sequential);
    return tf.tidy(() => tf.softmax(net.forward(x)).dataSync() as Float32Array);
  } finally {
    trainer.dispose();
  }
}

async function stockPredict(dir: string, x: tf.Tensor4D): Promise<{ probs: Float32Array; model: tf.LayersModel }> {
  const model = await tf.loadLayersModel(`file://${path.join(dir, 'model.json')}`);
  const probs = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
  return { probs, model };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const bytesOf = (t: tf.Tensor) => {
  const v = t.dataSync() as Float32Array;
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
};

describe('export and report (real Temporal dev server, real worker process)', function () {
  this.timeout(600_000);
  let cluster: TestCluster;
  let worker: WorkerProcess;
  let mlpSpec: RunSpec;
  let mlpResult: RunResult;
  let manager: CheckpointManager;
  let out: string;

  before(async function () {
    // Routers return null for URLs they do not handle (the IORouter type does not say so). Only when none reads
    // file:// yet: once tfjs-node is loaded in this process (the native backend tests load it), it brings its own.
    if (tf.io.getLoadHandlers('file:///probe.json').length === 0) {
      tf.io.registerLoadRouter(
        (url) =>
          (typeof url === 'string' && url.startsWith('file://') ? fileLoadHandler(url) : null) as tf.io.IOHandler,
      );
    }
    cluster = await startCluster();
    worker = spawnWorker(cluster);
    await worker.ready;
    out = tmpDir('dt-export-');
    mlpSpec = validateSpec(mlp);
    const file = writeSpec(cluster.dir, 'mlp.json', mlp);
    const r = cli(cluster, ['start', '--spec', file, '--run-id', 'exp-mlp', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr + worker.output());
    mlpResult = r.json<{ result: RunResult }>().result;
    assert.equal(mlpResult.step, 24);
    manager = new CheckpointManager(openStore(`file://${path.join(cluster.dir, '.data', 'checkpoints')}`), 'exp-mlp');
  });
  after(async function () {
    await worker?.kill('SIGTERM');
    await cluster?.close();
  });

  it('exports the newest checkpoint as a Layers model that stock tfjs loads and that predicts what our restore predicts', async function () {
    const dir = path.join(out, 'mlp-latest');
    const r = cli(cluster, ['export', 'exp-mlp', '--out', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = r.json<{
      checkpoint: { id: string; step: number };
      files: Array<{ name: string; bytes: number }>;
      weightsSha256: string;
      optimizer: unknown;
    }>();
    assert.equal(res.checkpoint.id, mlpResult.lastCheckpoint?.id);
    assert.equal(res.checkpoint.step, 24);
    assert.equal(res.weightsSha256, mlpResult.weightsSha256, 'the exported weights are the run result weights');
    assert.equal(res.optimizer, null);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['model.json', 'preprocessing.json', 'weights.bin']);
    assert.deepEqual(
      fs.readdirSync(out).filter((f) => f.startsWith('.')),
      [],
      'no staging directory left behind',
    );

    const modelJson = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    assert.equal(modelJson.format, 'layers-model');
    assert.deepEqual(modelJson.weightsManifest[0].paths, ['./weights.bin']);
    assert.deepEqual(
      modelJson.weightsManifest[0].weights.map((w: { name: string }) => w.name),
      ['dense1/kernel', 'dense1/bias', 'dense2/kernel', 'dense2/bias'],
    );
    assert.equal(modelJson.userDefinedMetadata.durableTrain.checkpointId, res.checkpoint.id);
    assert.equal(fs.statSync(path.join(dir, 'weights.bin')).size, (784 * 128 + 128 + 128 * 10 + 10) * 4);

    const x = testImages(mlpSpec, 64);
    try {
      const stock = await stockPredict(dir, x);
      // Every weight of the loaded model is bit-identical to the checkpoint's blob of the same stable name.
      const loaded = await manager.load(res.checkpoint.id);
      let compared = 0;
      for (const layer of stock.model.layers)
        for (const w of layer.weights) {
          const blob = loaded.blobs.get(`model/${w.originalName}`);
          assert.ok(blob, `checkpoint blob for ${w.originalName}`);
          assert.ok(Buffer.from(blob).equals(bytesOf(w.read())), `${w.originalName} differs from the checkpoint`);
          compared++;
        }
      assert.equal(compared, 4);

      const ours = await oursPredict(mlpSpec, manager, res.checkpoint.id, x);
      const diff = maxAbsDiff(stock.probs, ours);
      assert.ok(diff <= 1e-6, `stock tfjs and our restore differ by ${diff}`);
      // The comparison can tell checkpoints apart: an earlier checkpoint predicts measurably differently.
      const earlier = (await manager.list()).find((c) => c.step === 10)!;
      const other = await oursPredict(mlpSpec, manager, earlier.id, x);
      assert.ok(maxAbsDiff(stock.probs, other) > 1e-3, 'an earlier checkpoint should predict differently');
      // And the model is a trained one, not zeros: most of the test batch is classified right.
      const labels = loadDataset(mlpSpec.dataset).test.labels;
      let correct = 0;
      for (let i = 0; i < 64; i++) {
        const row = Array.from(stock.probs.subarray(i * 10, i * 10 + 10));
        if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
      }
      assert.ok(correct > 40, `${correct}/64 right`);
      stock.model.dispose();
    } finally {
      x.dispose();
    }
  });

  it('exports a chosen checkpoint with --include-optimizer: slots under stable names, bytes equal to the checkpoint', async function () {
    const ckpt = (await manager.list()).find((c) => c.step === 15)!;
    assert.ok(ckpt, 'checkpoint at step 15');
    const dir = path.join(out, 'mlp-15');
    const r = cli(cluster, ['export', `exp-mlp:${ckpt.id}`, '--out', dir, '--include-optimizer', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = r.json<{
      checkpoint: { id: string };
      optimizer: { name: string; iterations: number; tensors: string[] };
    }>();
    assert.equal(res.checkpoint.id, ckpt.id);
    assert.deepEqual(fs.readdirSync(dir).sort(), [
      'model.json',
      'optimizer.bin',
      'optimizer.json',
      'preprocessing.json',
      'weights.bin',
    ]);
    assert.equal(res.optimizer.name, 'adam');
    assert.equal(res.optimizer.iterations, 15);

    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'optimizer.json'), 'utf8'));
    assert.equal(manifest.format, 'durable-train-optimizer');
    assert.equal(manifest.iterations, 15);
    assert.equal(manifest.checkpointId, ckpt.id);
    assert.deepEqual(manifest.optimizer, mlpSpec.optimizer);
    const specs = manifest.weightsManifest[0].weights as tf.io.WeightsManifestEntry[];
    const names = specs.map((w) => w.name).sort();
    const expected = ['m', 'v']
      .flatMap((k) =>
        ['dense1/bias', 'dense1/kernel', 'dense2/bias', 'dense2/kernel'].map((p) => `opt/adam/${k}/model/${p}`),
      )
      .concat(['opt/adam/iterations'])
      .sort();
    assert.deepEqual(names, expected);
    const bin = fs.readFileSync(path.join(dir, 'optimizer.bin'));
    const decoded = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), specs);
    const loaded = await manager.load(ckpt.id);
    for (const name of names) {
      const t = decoded[name];
      const blob = Buffer.from(loaded.blobs.get(name)!);
      const v = t.dataSync() as Float32Array | Int32Array;
      assert.ok(blob.equals(Buffer.from(v.buffer, v.byteOffset, v.byteLength)), `${name} differs from the checkpoint`);
      assert.ok(t.size > 0);
    }
    assert.equal((decoded['opt/adam/iterations'].dataSync() as Int32Array)[0], 15);
    tf.dispose(Object.values(decoded));
    // The model of that checkpoint, not the newest one.
    const modelJson = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    assert.equal(modelJson.userDefinedMetadata.durableTrain.step, 15);
  });

  it('refuses bad input with a clear error and writes nothing', async function () {
    const missing = path.join(out, 'never');
    let r = cli(cluster, ['export', 'no-such-run', '--out', missing]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /no run no-such-run/);
    assert.equal(fs.existsSync(missing), false);

    r = cli(cluster, ['export', 'exp-mlp']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--out DIR is required[\s\S]*--include-optimizer/);

    r = cli(cluster, ['export', 'exp-mlp:20990101-not-a-checkpoint', '--out', missing]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(fs.existsSync(missing), false);

    // A non-empty directory: refused untouched; --force replaces only our files and drops stale optimizer files.
    const full = path.join(out, 'full');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'notes.txt'), 'mine');
    fs.writeFileSync(path.join(full, 'model.json'), 'old');
    fs.writeFileSync(path.join(full, 'optimizer.json'), 'stale');
    r = cli(cluster, ['export', 'exp-mlp', '--out', full]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /not empty.*--force/);
    assert.equal(fs.readFileSync(path.join(full, 'model.json'), 'utf8'), 'old');
    r = cli(cluster, ['export', 'exp-mlp', '--out', full, '--force', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(full).sort(), ['model.json', 'notes.txt', 'preprocessing.json', 'weights.bin']);
    assert.equal(JSON.parse(fs.readFileSync(path.join(full, 'model.json'), 'utf8')).format, 'layers-model');

    // A file where the directory should be.
    const file = path.join(out, 'a-file');
    fs.writeFileSync(file, 'x');
    r = cli(cluster, ['export', 'exp-mlp', '--out', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a directory/);

    // A damaged checkpoint is never exported: one flipped byte in a weight blob of the step-10 checkpoint.
    const ckpt = (await manager.list()).find((c) => c.step === 10)!;
    const blob = (await manager.readManifest(ckpt.id)).blobs.find((b) => b.name === 'model/dense2/bias')!;
    const blobFile = path.join(cluster.dir, '.data', 'checkpoints', 'exp-mlp', 'blobs', blob.sha256);
    const original = fs.readFileSync(blobFile);
    const damaged = Buffer.from(original);
    damaged[3] ^= 0x40;
    fs.writeFileSync(blobFile, damaged);
    try {
      const dir = path.join(out, 'damaged');
      r = cli(cluster, ['export', `exp-mlp:${ckpt.id}`, '--out', dir]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, new RegExp(`checkpoint ${ckpt.id} is damaged: blob model/dense2/bias`));
      assert.match(r.stderr, /nothing exported/);
      assert.equal(fs.existsSync(dir), false);
      // The default (newest valid) is unaffected.
      r = cli(cluster, ['export', 'exp-mlp', '--out', dir, '--json']);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      fs.writeFileSync(blobFile, original);
    }
    assert.deepEqual(
      fs.readdirSync(out).filter((f) => f.startsWith('.')),
      [],
      'no staging directory left behind',
    );
  });

  it('reports a CNN run that continued-as-new and recovered from a killed worker; its export predicts like our restore', async function () {
    const spec = validateSpec(cnn);
    const handle = await cluster.client.workflow.start('trainingWorkflow', {
      workflowId: 'rep-cnn',
      taskQueue: cluster.taskQueue,
      args: [{ spec, chunksPerRun: 2 }],
      memo: { spec },
    });
    // Kill the worker inside the second chunk (the first has committed), then let a new worker finish.
    await waitFor('the first chunk to complete', async () => (await handle.query(progressQuery)).chunks >= 1);
    const since = Date.now();
    await waitFor('the second chunk to be running on the worker', async () =>
      (await handle.describe()).raw.pendingActivities?.some(
        (a) => a.activityType?.name === 'trainChunk' && (a.state as number) === PENDING_ACTIVITY_STATE_STARTED,
      ),
    );
    await chunkProgressed(handle, since, worker); // it trains: a heartbeat after the first chunk ended
    await worker.kill('SIGKILL');
    worker = spawnWorker(cluster);
    await worker.ready;
    const result = (await handle.result()) as RunResult;
    assert.equal(result.step, 120);
    assert.ok(result.recoveries >= 1, 'the kill landed inside a chunk');

    const nowhere = path.join(out, 'report', 'none.html');
    let bad = cli(cluster, ['report', 'no-such-run', '--out', nowhere]);
    assert.equal(bad.code, 3, bad.stderr);
    assert.match(bad.stderr, /no run no-such-run/);
    bad = cli(cluster, ['report', 'rep-cnn']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--out FILE\.html is required/);
    assert.equal(fs.existsSync(nowhere), false);

    const html = path.join(out, 'report', 'rep-cnn.html');
    const png = path.join(out, 'report', 'rep-cnn.png');
    const r = cli(cluster, ['report', 'rep-cnn', '--out', html, '--png', png, '--verify', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = r.json<{
      executions: number;
      chunks: number;
      evals: number;
      checkpoints: string[];
      recoveries: number;
      checkpointsError: string | null;
    }>();
    assert.equal(rep.executions, 2, 'chunks 1-2 in the first execution, chunk 3 after continue-as-new');
    assert.equal(rep.chunks, 3);
    assert.equal(rep.evals, 1);
    assert.ok(rep.recoveries >= 1);
    assert.equal(rep.checkpointsError, null);
    const list = cli(cluster, ['checkpoints', 'list', 'rep-cnn', '--json']).json<Array<{ id: string; step: number }>>();
    assert.deepEqual([...rep.checkpoints].sort(), list.map((c) => c.id).sort());

    const page = fs.readFileSync(html, 'utf8');
    assert.match(page, /^<!doctype html>/);
    assert.equal((page.match(/<svg\b/g) ?? []).length, 3, 'loss, accuracy and learning-rate charts');
    const paths = [...page.matchAll(/<path d="M([^"]+)"/g)].map((m) => m[1].split(' L').length);
    assert.ok(paths.length >= 4, `curves drawn: ${paths.length}`);
    assert.ok(
      paths.filter((n) => n >= 3).length >= 3,
      `train loss, train accuracy, learning rate have 3 points each: ${paths}`,
    );
    for (const c of list) assert.ok(page.includes(c.id), `checkpoint ${c.id} in the page`);
    assert.ok(page.includes('class="mark recovery"'), 'a recovery mark');
    assert.ok((page.match(/class="mark checkpoint"/g) ?? []).length >= 3 * 3, 'checkpoint marks on every chart');
    assert.ok(page.includes('"model": "mnist-cnn"') && page.includes('"trainLimit": 3840'), 'the spec');
    assert.ok(page.includes(result.weightsSha256!), 'the result');
    assert.doesNotMatch(page, /https?:\/\//i, 'no http(s) references');
    assert.doesNotMatch(page, /<(script|link|img|iframe)\b|\bsrc=|url\(|@import/i, 'nothing loaded from elsewhere');

    const img = readPng(fs.readFileSync(png));
    assert.equal(img.width, 900);
    assert.equal(img.height, 26 + 3 * 240, 'a caption and three panels');
    assert.equal(img.bitDepth, 8);
    assert.equal(img.colorType, 6, 'RGBA, as resvg writes it');
    const count = (rgb: [number, number, number]) => {
      let n = 0;
      for (let i = 0; i < img.pixels.length; i += 3)
        if (img.pixels[i] === rgb[0] && img.pixels[i + 1] === rgb[1] && img.pixels[i + 2] === rgb[2]) n++;
      return n;
    };
    const pixels = img.width * img.height;
    const white = count([255, 255, 255]);
    assert.ok(white < pixels * 0.98 && white > pixels * 0.5, `white pixels: ${white} of ${pixels}`);
    assert.ok(count([0x1f, 0x77, 0xb4]) > 200, 'training curves (blue) drawn');
    assert.ok(count([0xd6, 0x27, 0x28]) > 100, 'recovery marks (red) drawn');

    // The CNN export (conv, pooling, dropout, flatten layers) predicts like our restore of the same checkpoint.
    const dir = path.join(out, 'cnn');
    const e = cli(cluster, ['export', 'rep-cnn', '--out', dir, '--json']);
    assert.equal(e.code, 0, e.stderr);
    const exp = e.json<{ checkpoint: { id: string }; weightsSha256: string }>();
    assert.equal(exp.weightsSha256, result.weightsSha256);
    const cnnManager = new CheckpointManager(
      openStore(`file://${path.join(cluster.dir, '.data', 'checkpoints')}`),
      'rep-cnn',
    );
    const x = testImages(spec, 32);
    try {
      const stock = await stockPredict(dir, x);
      assert.deepEqual(
        stock.model.layers.map((l) => l.getClassName()),
        ['Conv2D', 'MaxPooling2D', 'Conv2D', 'MaxPooling2D', 'Dropout', 'Flatten', 'Dense', 'Dropout', 'Dense'],
      );
      const ours = await oursPredict(spec, cnnManager, exp.checkpoint.id, x);
      const diff = maxAbsDiff(stock.probs, ours);
      assert.ok(diff <= 1e-6, `stock tfjs and our restore differ by ${diff}`);
      stock.model.dispose();
    } finally {
      x.dispose();
    }
  });

  it('keeps tensors out of Temporal: every payload of both runs is small beside their checkpoints, and so is each history', async function () {
    // Every execution of each run (the CNN continued-as-new and was retried after a kill), every event, every payload.
    for (const runId of ['exp-mlp', 'rep-cnn']) {
      const checkpoints = new CheckpointManager(
        openStore(`file://${path.join(cluster.dir, '.data', 'checkpoints')}`),
        runId,
      );
      const weights = Math.min(...(await checkpoints.list()).map((c) => c.sizeBytes));
      let executions = 0;
      let payloads = 0;
      for await (const w of cluster.client.workflow.list({ query: `WorkflowId = '${runId}'` })) {
        executions++;
        const history = await cluster.client.workflow.getHandle(runId, w.runId).fetchHistory();
        const sizes: number[] = [];
        const walk = (v: unknown): void => {
          if (v instanceof Uint8Array || v === null || typeof v !== 'object') return;
          const o = v as Record<string, unknown>;
          if (o.data instanceof Uint8Array && o.metadata && typeof o.metadata === 'object')
            sizes.push(o.data.byteLength);
          else Object.values(o).forEach(walk);
        };
        walk(history.events);
        const total = sizes.reduce((a, b) => a + b, 0);
        const largest = Math.max(...sizes);
        assert.ok(sizes.length > 0, `${runId}/${w.runId}: no payload seen`);
        payloads += sizes.length;
        // The smallest checkpoint holds over 300 KB of weights and slots; no payload may come near one tensor of it.
        assert.ok(weights > 300_000, `${runId}: checkpoints of ${weights} bytes`);
        assert.ok(largest < 16_384, `${runId}/${w.runId}: a payload of ${largest} bytes`);
        assert.ok(
          total < weights / 2,
          `${runId}/${w.runId}: ${total} payload bytes in the history, ${weights} in a checkpoint`,
        );
      }
      assert.ok(executions >= (runId === 'rep-cnn' ? 2 : 1), `${runId}: ${executions} executions`);
      assert.ok(payloads > 20, `${runId}: ${payloads} payloads seen`);
    }
  });
});
