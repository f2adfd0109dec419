// Your own model and data (real dev server, real worker processes): a model given as a layer list, data from a CSV
// file, classification and regression; each killed mid-chunk and resumed ends with the uninterrupted weights; bad
// models and data are refused by `start` before anything starts. The CLI runs in this process (cliIn); the workers
// are processes (they are killed).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import type { WorkflowHandle } from '@temporalio/client';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { waitFor, writeSpec, type TestCluster, type WorkerProcess } from '../helpers/cluster';
import { cliIn } from '../helpers/cli-in-process';
import { chunkProgressed, TEST_HEARTBEAT_S, useCluster } from '../helpers/fixtures';

const checkpoint = { storage: 'file://.data/checkpoints', everySeconds: 1, keepLatest: 3 };

// Strided 'same' conv (tf.conv2d's own gradients), batch norm (moving statistics in every checkpoint), dropout,
// pooling and an explicit activation layer.
const layerCnn = {
  model: {
    layers: [
      { type: 'conv2d', filters: 8, kernelSize: 3, strides: 2, padding: 'same' },
      { type: 'batchNormalization', name: 'bn' },
      { type: 'activation', activation: 'relu' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'dropout', rate: 0.2 },
      { type: 'flatten' },
      { type: 'dense', units: 10, activation: 'softmax' },
    ],
  },
  dataset: { name: 'mnist', trainLimit: 2400, testLimit: 200, validationFraction: 0 },
  epochs: 2,
  batchSize: 16,
  chunkSteps: 60,
  seed: 5,
  optimizer: { name: 'adam', learningRate: 0.002 },
  checkpoint,
};

/** A small deterministic generator, so the test's files are the same on every run. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

/** Three classes of points around different centres in 4 dimensions; labels are strings. */
function classificationCsv(rows: number): string {
  const r = lcg(1);
  const centres: Record<string, number[]> = {
    setosa: [0, 0, 0, 0],
    versicolor: [2, 1, 0, -1],
    virginica: [-1, 2, 2, 1],
  };
  const names = Object.keys(centres);
  const lines = ['f1,f2,species,f3,f4'];
  for (let i = 0; i < rows; i++) {
    const name = names[i % 3];
    const c = centres[name].map((v) => (v + (r() - 0.5) * 1.5).toFixed(4));
    lines.push(`${c[0]},${c[1]},${name},${c[2]},${c[3]}`);
  }
  return lines.join('\n') + '\n';
}

/** y = 3*a - 2*b + 0.5*c + 1 + noise. */
function regressionCsv(rows: number): string {
  const r = lcg(2);
  const lines = ['a,b,c,y'];
  for (let i = 0; i < rows; i++) {
    const [a, b, c] = [r() * 4 - 2, r() * 4 - 2, r() * 4 - 2];
    const y = 3 * a - 2 * b + 0.5 * c + 1 + (r() - 0.5) * 0.1;
    lines.push([a, b, c, y].map((v) => v.toFixed(5)).join(','));
  }
  return lines.join('\n') + '\n';
}

const mlp = (outputs: number, activation: string) => ({
  layers: [
    { type: 'dense', units: 16, activation: 'relu' },
    { type: 'dropout', rate: 0.1 },
    { type: 'dense', units: outputs, activation },
  ],
});

const csvClassification = {
  model: mlp(3, 'softmax'),
  dataset: { format: 'csv', path: 'file://data/points.csv', label: 'species' },
  epochs: 12,
  batchSize: 8,
  chunkSteps: 40,
  seed: 3,
  optimizer: { name: 'adam', learningRate: 0.01 },
  checkpoint,
};

const csvRegression = {
  model: mlp(1, 'linear'),
  task: 'regression',
  loss: 'huber',
  dataset: { format: 'csv', path: 'file://data/line.csv', label: 'y', features: ['a', 'b', 'c'], testFraction: 0.25 },
  epochs: 12,
  batchSize: 8,
  chunkSteps: 40,
  seed: 4,
  optimizer: { name: 'adam', learningRate: 0.01 },
  schedule: { name: 'plateau', metric: 'loss', patience: 2 },
  checkpoint: { ...checkpoint, keepBest: { k: 2, metric: 'loss' } },
};

/** A 4-8-3 classifier with fixed weights, written as tfjs's model.save writes it (model.json + weights.bin). */
async function saveTfjsModel(dir: string, hidden: number): Promise<void> {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ name: 'hidden', inputShape: [4], units: hidden, activation: 'relu' }),
      tf.layers.dense({ name: 'out', units: 3, activation: 'softmax' }),
    ],
  });
  const r = lcg(9);
  model.setWeights(
    model.weights.map((w) =>
      tf.tensor(
        Float32Array.from({ length: (w.shape as number[]).reduce((a, b) => a * b, 1) }, () => r() - 0.5),
        w.shape as number[],
      ),
    ),
  );
  fs.mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(a.weightData as ArrayBuffer));
      const json = {
        format: a.format,
        generatedBy: a.generatedBy,
        convertedBy: a.convertedBy,
        modelTopology: a.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
      };
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  model.dispose();
}

describe('own models and data: layer lists, files, tasks; exact after SIGKILL', function () {
  this.timeout(900_000);
  const fx = useCluster();
  let cluster: TestCluster;
  // This test's workers (the fixture kills them after each test), for their logs when a start fails.
  const workers: WorkerProcess[] = [];
  const worker = async (paced?: { stepMs: number }) => {
    const w = await fx.worker(paced ? { paced } : {});
    workers.push(w);
    return w;
  };
  const manifestsOf = (runId: string) => fx.manifests(runId) as Array<{ step: number; blobs: Array<{ name: string }> }>;
  // The block's unpaced worker (started in before) polls a task queue of its own: the reference runs go there.
  const plainQueue = () => ({ DURABLE_TRAIN_TASK_QUEUE: `${cluster.taskQueue}-plain` });
  const start = async (runId: string, spec: object, env: NodeJS.ProcessEnv = {}) => {
    const file = writeSpec(cluster.dir, `${runId}.json`, spec);
    const r = await cliIn(cluster, ['start', '--spec', file, '--run-id', runId, '--json'], { env });
    assert.equal(r.code, 0, r.stderr + workers.map((w) => w.output()).join('\n'));
    return r;
  };

  /** The reference run uninterrupted, then the same spec with its worker SIGKILLed mid-chunk: same weights. */
  async function exactAfterKill(name: string, given: { chunkSteps: number }): Promise<RunResult> {
    const spec = { ...given, heartbeatTimeoutSeconds: TEST_HEARTBEAT_S };
    // The reference trains on the block's unpaced worker while this test's paced worker starts and its run trains.
    await start(`${name}-ref`, spec, plainQueue());
    const referenceDone = cluster.client.workflow.getHandle(`${name}-ref`).result() as Promise<RunResult>;
    referenceDone.catch(() => undefined);
    // Paced (every step 25 ms longer, same numbers): the run is still inside a chunk when the kill lands after a
    // heartbeat observed below, whatever the machine's speed.
    const w1 = await worker({ stepMs: 25 });
    await start(name, spec);
    const handle: WorkflowHandle = cluster.client.workflow.getHandle(name);
    // Kill inside a chunk, after at least one commit (the first chunk's end), well before the end.
    await waitFor(
      `${name} past a commit`,
      async () => (await handle.query(progressQuery)).step >= spec.chunkSteps,
      300_000,
      50,
    );
    const seen = await chunkProgressed(handle, Date.now(), w1);
    const { totalSteps: total } = await handle.query(progressQuery);
    assert.ok(seen.step !== null && seen.step < total - 1, `killed inside a chunk (step ${seen.step} of ${total})`);
    await w1.kill('SIGKILL');
    await worker();
    const result = (await handle.result()) as RunResult;
    const reference = await referenceDone;
    assert.equal(reference.status, 'completed');
    assert.equal(result.status, 'completed');
    assert.equal(reference.step, total);
    assert.equal(result.step, total);
    assert.ok(result.recoveries >= 1, `a recovery happened: ${JSON.stringify(result)}`);
    assert.equal(result.weightsSha256, reference.weightsSha256, `${name}: same weights as uninterrupted`);
    return result;
  }

  before(async function () {
    cluster = fx.cluster;
    await fx.worker({ env: plainQueue() });
    fs.mkdirSync(path.join(cluster.dir, 'data'));
    fs.writeFileSync(path.join(cluster.dir, 'data', 'points.csv'), classificationCsv(600));
    fs.writeFileSync(path.join(cluster.dir, 'data', 'line.csv'), regressionCsv(800));
  });
  afterEach(function () {
    workers.length = 0;
  });

  it('a layer-list CNN (strided conv, batch norm, dropout) resumes exactly; batch-norm statistics are checkpointed', async function () {
    const result = await exactAfterKill('layers-cnn', layerCnn);
    assert.ok(result.accuracy !== null && result.accuracy > 0.5, `it learned: ${result.accuracy}`);
    const last = manifestsOf('layers-cnn').sort((a, b) => b.step - a.step)[0];
    const names = last.blobs.map((b) => b.name);
    for (const n of ['model/bn/moving_mean', 'model/bn/moving_variance', 'model/bn/gamma', 'model/conv2d1/kernel'])
      assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
    assert.ok(
      !names.some((n) => n.startsWith('opt/adam/m/model/bn/moving')),
      'no optimizer slots for moving statistics',
    );
  });

  it('a CSV classification dataset (string labels) with a spec-defined layer list resumes exactly', async function () {
    const result = await exactAfterKill('csv-class', csvClassification);
    assert.ok(result.accuracy !== null && result.accuracy > 0.8, `it learned: ${result.accuracy}`);
  });

  it('a CSV regression (huber loss, plateau on loss) resumes exactly and reports mse and mae, not accuracy', async function () {
    const result = await exactAfterKill('csv-reg', csvRegression);
    assert.equal(result.accuracy, null);
    assert.ok(
      typeof result.mse === 'number' && typeof result.mae === 'number',
      `mse and mae: ${JSON.stringify(result)}`,
    );
    const progress = await cluster.client.workflow.getHandle('csv-reg').query(progressQuery);
    const last = progress.lastEval as { mse?: number; mae?: number; accuracy: number | null } | null;
    assert.ok(last && typeof last.mse === 'number' && typeof last.mae === 'number', JSON.stringify(last));
    assert.ok(last.mae! < 0.5, `the line was learned: mae ${last.mae}`);
    const html = path.join(cluster.dir, 'csv-reg.html');
    const report = await cliIn(cluster, ['report', 'csv-reg', '--out', html]);
    assert.equal(report.code, 0, report.stderr);
    const page = fs.readFileSync(html, 'utf8');
    assert.match(page, /test error/);
    assert.match(page, /test mae/);
    const status = await cliIn(cluster, ['status', 'csv-reg']);
    assert.match(status.stdout, /test mse \d\.\d+ +test mae \d\.\d+/, status.stdout);
    // runs list shows a regression run's validation errors (what its choices were made on) beside the test ones.
    const runs = await cliIn(cluster, ['runs', 'list']);
    const line = runs.stdout.split('\n').find((l) => l.includes('csv-reg')) ?? '';
    assert.match(line, /val mse \d\.\d+ mae \d\.\d+ +test mse \d\.\d+ mae \d\.\d+/, runs.stdout);
    const ck = manifestsOf('csv-reg').sort((a, b) => b.step - a.step)[0] as unknown as {
      metrics: Record<string, number>;
    };
    assert.ok(
      'testMae' in ck.metrics && 'testMse' in ck.metrics && !('testAccuracy' in ck.metrics),
      JSON.stringify(ck.metrics),
    );
  });

  it('a model.json written by tfjs model.save is fine-tuned from its weights, resumes exactly, and exports back', async function () {
    const dir = path.join(cluster.dir, 'model');
    await saveTfjsModel(dir, 8);
    const spec = { ...csvClassification, model: { tfjs: 'file://model/model.json' }, freeze: ['hidden'] };
    const result = await exactAfterKill('tfjs-ft', spec);
    assert.ok(result.accuracy !== null && result.accuracy > 0.6, `it learned: ${result.accuracy}`);
    // The frozen layer still holds the file's bytes: training started from the file's weights, not from the seed.
    const fileBytes = fs.readFileSync(path.join(dir, 'weights.bin'));
    const last = manifestsOf('tfjs-ft').sort((a, b) => b.step - a.step)[0] as unknown as {
      blobs: Array<{ name: string; sha256: string }>;
    };
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(
      last.blobs.find((b) => b.name === 'model/hidden/kernel')?.sha256,
      sha(fileBytes.subarray(0, 4 * 8 * 4)),
      'hidden/kernel equals the file',
    );
    assert.notEqual(
      last.blobs.find((b) => b.name === 'model/out/kernel')?.sha256,
      sha(fileBytes.subarray(4 * 40, 4 * 64)),
    );

    // Export writes the same format back; tfjs loads it and its weights hash to the run's weightsSha256.
    const out = path.join(cluster.dir, 'exported');
    const r = await cliIn(cluster, ['export', 'tfjs-ft', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')) as tf.io.ModelJSON;
    const data = fs.readFileSync(path.join(out, 'weights.bin'));
    const loaded = await tf.loadLayersModel({
      load: async () => ({
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest[0].weights,
        weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
      }),
    });
    assert.deepEqual(
      loaded.layers.map((l) => l.name),
      ['hidden', 'out'],
    );
    const h = createHash('sha256');
    for (const w of [...loaded.weights].sort((a, b) => (a.originalName < b.originalName ? -1 : 1))) {
      h.update(Buffer.from((w.read().dataSync() as Float32Array).buffer));
    }
    assert.equal(h.digest('hex'), result.weightsSha256, "the exported weights are the run's final weights");
    loaded.dispose();
  });

  it('refuses a model.json whose weights do not match its topology, before anything starts', async function () {
    const dir = path.join(cluster.dir, 'model-bad');
    await saveTfjsModel(dir, 8);
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    json.modelTopology.config.layers[0].config.units = 9;
    fs.writeFileSync(file, JSON.stringify(json));
    const spec = { ...csvClassification, model: { tfjs: 'file://model-bad/model.json' } };
    const r = await cliIn(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, 'tfjs-bad.json', spec),
      '--run-id',
      'tfjs-bad',
    ]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /model\.tfjs: file:\/\/model-bad\/model\.json: .*(do not match|mismatch|shape)/i);
  });

  it('refuses bad data before anything starts, naming the field', async function () {
    fs.writeFileSync(path.join(cluster.dir, 'data', 'empty.csv'), '');
    fs.writeFileSync(path.join(cluster.dir, 'data', 'words.csv'), 'a,b,label\n1,2,x\n3,oops,y\n');
    const bad: Array<[object, RegExp]> = [
      [{ ...csvClassification.dataset, label: 'kind' }, /dataset\.label: .*kind/],
      [{ ...csvClassification.dataset, path: 'file://data/none.csv' }, /dataset\.path: .*none\.csv/],
      [{ ...csvClassification.dataset, path: 'file://data/empty.csv' }, /dataset\.path: .*empty/],
      [{ format: 'csv', path: 'file://data/words.csv', label: 'label' }, /dataset.*column b.*line 3|dataset.*"oops"/],
    ];
    for (const [i, [dataset, message]] of bad.entries()) {
      const id = `bad-data-${i}`;
      const r = await cliIn(cluster, [
        'start',
        '--spec',
        writeSpec(cluster.dir, `${id}.json`, { ...csvClassification, dataset }),
        '--run-id',
        id,
      ]);
      assert.equal(r.code, 2, `${JSON.stringify(dataset)}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });

  it('refuses a bad model before anything starts, naming the layer, its index and what is supported', async function () {
    const bad: Array<[object, RegExp]> = [
      [
        { layers: [{ type: 'gaussianNoise', stddev: 0.1 }] },
        /model\.layers\[0\]\.type: unknown value "gaussianNoise" \(one of: dense, conv2d/,
      ],
      [
        { layers: [{ type: 'flatten' }, { type: 'dense', unit: 10 }] },
        /model\.layers\[1\]\.unit: .*unsupported option for dense/,
      ],
      [{ layers: [{ type: 'dense' }] }, /model\.layers\[0\]\.units: .*missing/],
      [
        {
          layers: [
            { type: 'flatten' },
            { type: 'dense', units: 5, activation: 'softmax' },
            { type: 'dense', units: 10 },
          ],
        },
        /model\.layers\[1\]\.activation: .*softmax is supported on the last layer only/,
      ],
    ];
    for (const [i, [model, message]] of bad.entries()) {
      const r = await cliIn(cluster, [
        'start',
        '--spec',
        writeSpec(cluster.dir, `bad-${i}.json`, { ...layerCnn, model }),
        '--run-id',
        `bad-${i}`,
      ]);
      assert.equal(r.code, 2, `${JSON.stringify(model)}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message);
      const exists = await cluster.client.workflow
        .getHandle(`bad-${i}`)
        .describe()
        .then(
          () => true,
          () => false,
        );
      assert.ok(!exists, 'nothing started');
    }
  });
});
