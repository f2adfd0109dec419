// Test accuracy of converted Keras fixtures (test/fixtures/keras: mlp-bn-l2, cnn) trained in durable-train, beside
// the same architectures trained in Keras (bench/keras_accuracy.py, TensorFlow wheel in .tools/venv) on the same
// MNIST split (the first --train training images, the first --test test images), three seeds each.
// durable-train starts from the fixture's converted weights (the seed orders the data); Keras from a fresh seeded
// initialization. Prints one JSON object.
//
//   npm run build && node dist/bench/keras-accuracy.js [--train 3000] [--test 1000] [--epochs 2]
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import type { RunSpec } from '../spec/types';
import { Trainer } from '../training';
import { initBackend } from '../training/backend';
import { numArg } from './common';

const ROOT = path.join(__dirname, '..', '..');
const SEEDS = [1, 2, 3];

async function main(): Promise<void> {
  const [train, test, epochs] = [numArg('train', 3000), numArg('test', 1000), numArg('epochs', 2)];
  const backend = await initBackend();
  const durable: Record<string, number[]> = {};
  for (const name of ['mlp-bn-l2', 'cnn']) {
    durable[name] = [];
    for (const seed of SEEDS) {
      const spec = {
        model: { tfjs: `file://${path.join(ROOT, 'test', 'fixtures', 'keras', name, 'model.json')}` },
        dataset: { name: 'mnist', trainLimit: train, testLimit: test },
        epochs,
        batchSize: 32,
        seed,
        optimizer: { name: 'adam', learningRate: 1e-3 },
        checkpoint: { storage: 'file://unused' },
      } as RunSpec;
      const t = await Trainer.create(spec);
      try {
        while (!t.done) await t.train({ maxSteps: 1000 });
        durable[name].push(t.evaluate().accuracy!);
      } finally {
        t.dispose();
      }
    }
  }
  const python = path.join(ROOT, '.tools', 'venv', 'bin', 'python');
  const keras = JSON.parse(
    execFileSync(python, [path.join(ROOT, 'bench', 'keras_accuracy.py'), String(train), String(test), String(epochs)], {
      encoding: 'utf8',
    }),
  ) as { accuracy: Record<string, number[]>; keras: string };
  console.log(
    JSON.stringify(
      { backend: backend.name, train, test, epochs, batchSize: 32, seeds: SEEDS, durable, keras },
      null,
      1,
    ),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
