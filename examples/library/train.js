// durable-train used as a library: a worker of your own with a model builder and a dataset loader registered in code,
// and a run started from code. Run it against a Temporal server (TEMPORAL_ADDRESS, default localhost:7233):
//   node examples/library/train.js [RUN_ID]
// It prints the run's result as JSON. In a project of your own: npm install durable-train, same code.
'use strict';
const tf = require('@tensorflow/tfjs');
const { Client, Connection } = require('@temporalio/client');
const { createTrainingWorker, startTraining } = require('durable-train');

/** Two interleaved half-moons in 2-D, from a fixed generator: the same data on every worker. */
function halfMoons({ seed }) {
  let s = seed >>> 0;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const split = (n) => {
    const x = new Float32Array(n * 2);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const c = i % 2;
      const t = Math.PI * rand();
      x[2 * i] = (c ? 1 - Math.cos(t) : Math.cos(t)) + (rand() - 0.5) * 0.2;
      x[2 * i + 1] = (c ? 0.5 - Math.sin(t) : Math.sin(t)) + (rand() - 0.5) * 0.2;
      y[i] = c;
    }
    return { x, y, n };
  };
  return {
    featureShape: [2],
    task: 'classification',
    classes: ['upper', 'lower'],
    train: split(800),
    test: split(200),
    fingerprint: `moons-${seed}`,
  };
}

/** Any tf.layers model of the supported layers; its weights are initialized by durable-train's seeded PRNG. */
function smallNet({ inputShape, outputs }) {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape, units: 16, activation: 'tanh' }),
      tf.layers.dense({ units: 16, activation: 'tanh' }),
      tf.layers.dense({ units: outputs, activation: 'softmax' }),
    ],
  });
}

async function main() {
  const runId = process.argv[2] || `moons-${Date.now().toString(36)}`;
  const address = process.env.TEMPORAL_ADDRESS || 'localhost:7233';
  const taskQueue = process.env.DURABLE_TRAIN_TASK_QUEUE || 'durable-train-library-example';
  const settings = { address, namespace: process.env.TEMPORAL_NAMESPACE || 'default', taskQueue };
  const { worker, connection } = await createTrainingWorker({
    settings,
    models: { 'small-net': smallNet },
    datasets: { 'half-moons': halfMoons },
  });
  const client = new Client({ connection: await Connection.connect({ address }) });
  const spec = {
    model: { registered: 'small-net' },
    dataset: { registered: 'half-moons' },
    epochs: 5,
    batchSize: 32,
    seed: 7,
    optimizer: { name: 'adam', learningRate: 0.02 },
    checkpoint: { storage: process.env.CHECKPOINTS || 'file://.data/checkpoints' },
  };
  try {
    const run = await startTraining(client, spec, { runId, settings });
    const result = await worker.runUntil(run.result());
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await client.connection.close();
    await connection.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
