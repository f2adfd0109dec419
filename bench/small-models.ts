// Small models on the tensorflow backend against wasm: scikit-learn-sized data (digits: 1,797 rows of 64 pixels;
// breast-cancer: 569 rows of 30 features; test/fixtures/data), batch 32, Adam. Two parts, each backend in fresh
// processes, interleaved round by round:
//   - end to end, as a user runs it: `durable-train main --spec ...` (its own dev server, a worker, the run), the
//     process's wall time, and of it the training span (from the worker's backend line to the run's result);
//   - one step in process: the Trainer alone (warmed up), wall and CPU ms per step and the kernels tfjs runs per
//     step (tf.profile), which is where a small model's time goes.
//
//   npx tsc -p tsconfig.json && node dist/bench/small-models.js [--rounds 5] [--steps 1000] [--quick]
//
// Prints one JSON object on stdout; tables and progress go to stderr.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../cli/dev-server';
import { QUICK, emit, log, machine, numArg, rmrf, round, summarize, table, tmpDir } from './common';

const ROOT = path.join(__dirname, '..', '..');
const DATA = path.join(ROOT, 'test', 'fixtures', 'data');
type Backend = 'tensorflow' | 'wasm';

const digits = {
  format: 'csv',
  path: `file://${path.join(DATA, 'digits.csv')}`,
  label: 'digit',
  validationFraction: 0.1,
};
const common = { batchSize: 32, seed: 3, optimizer: { name: 'adam', learningRate: 0.001 } };

/** The three models (without checkpoint storage, which each run gets its own of). */
const MODELS: Record<string, Record<string, unknown>> = {
  'digits-mlp': {
    ...common,
    model: {
      layers: [
        { type: 'dense', units: 64, activation: 'relu' },
        { type: 'dense', units: 10, activation: 'softmax' },
      ],
    },
    dataset: digits,
    epochs: 20,
  },
  'digits-cnn': {
    ...common,
    model: {
      inputShape: [64],
      layers: [
        { type: 'reshape', targetShape: [8, 8, 1] },
        { type: 'conv2d', filters: 16, kernelSize: 3, activation: 'relu', padding: 'same' },
        { type: 'maxPooling2d', poolSize: 2 },
        { type: 'flatten' },
        { type: 'dense', units: 10, activation: 'softmax' },
      ],
    },
    dataset: digits,
    epochs: 10,
  },
  'breast-cancer-mlp': {
    ...common,
    model: {
      layers: [
        { type: 'dense', units: 16, activation: 'relu' },
        { type: 'dense', units: 1, activation: 'sigmoid' },
      ],
    },
    dataset: {
      format: 'csv',
      path: `file://${path.join(DATA, 'breast-cancer.csv')}`,
      label: 'target',
      validationFraction: 0.1,
    },
    task: 'binary',
    epochs: 30,
    optimizer: { name: 'adam', learningRate: 0.01 },
  },
};

interface EndToEnd {
  model: string;
  backend: Backend;
  wallS: number;
  trainS: number;
  steps: number;
  weightsSha256: string;
}

/** One `main` run of `model` on `backend`, from a clean directory: its wall time and its training span. */
async function endToEnd(model: string, backend: Backend, rep: number): Promise<EndToEnd> {
  const dir = tmpDir('dt-small-');
  try {
    const specFile = path.join(dir, 'spec.json');
    const spec = { ...MODELS[model], checkpoint: { storage: `file://${path.join(dir, 'checkpoints')}` } };
    fs.writeFileSync(specFile, JSON.stringify(spec));
    const args = ['main', '--spec', specFile, '--run-id', `${model}-${backend}-${rep}`];
    args.push('--port', String(await freePort()), '--ui-port', String(await freePort()));
    args.push('--db', path.join(dir, 'temporal.sqlite'));
    const env = { ...process.env, DURABLE_TRAIN_BACKEND: backend };
    const t0 = performance.now();
    let backendAt = NaN;
    let doneAt = NaN;
    let out = '';
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'client.js'), ...args], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const onData = (d: Buffer) => {
        const text = d.toString();
        out += text;
        if (Number.isNaN(backendAt) && text.includes('tfjs backend')) backendAt = performance.now();
        if (Number.isNaN(doneAt) && / completed: step /.test(text)) doneAt = performance.now();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('error', reject);
      child.on('exit', resolve);
    });
    const wallS = (performance.now() - t0) / 1000;
    const steps = /completed: step (\d+)\//.exec(out);
    const sha = /weights sha256 ([0-9a-f]{64})/.exec(out);
    if (code !== 0 || !steps || !sha || Number.isNaN(backendAt) || Number.isNaN(doneAt))
      throw new Error(`${model} on ${backend}: exit ${code}\n${out.slice(-2000)}`);
    if (!out.includes(`tfjs backend ${backend}`)) throw new Error(`${model}: the worker did not train on ${backend}`);
    return {
      model,
      backend,
      wallS: round(wallS, 3),
      trainS: round((doneAt - backendAt) / 1000, 3),
      steps: Number(steps[1]),
      weightsSha256: sha[1],
    };
  } finally {
    rmrf(dir);
  }
}

interface StepFigures {
  model: string;
  backend: Backend;
  msPerStep: number;
  cpuMsPerStep: number;
  kernelsPerStep: number;
  kernels: Record<string, number>;
}

/** Child mode (`--step BACKEND MODEL STEPS`): the Trainer alone on one backend, one JSON line on stdout. */
async function stepChild(backend: Backend, model: string, steps: number): Promise<void> {
  const tf = await import('@tensorflow/tfjs');
  const { initBackend } = await import('../training/backend');
  const { Trainer } = await import('../training/trainer');
  const { validateSpec } = await import('../spec');
  await initBackend(backend);
  const dir = tmpDir('dt-small-step-');
  try {
    const spec = validateSpec({
      ...MODELS[model],
      epochs: 1000,
      checkpoint: { storage: `file://${path.join(dir, 'checkpoints')}` },
    });
    const t = await Trainer.create(spec);
    await t.train({ maxSteps: 30 });
    const prof = await tf.profile(async () => {
      await t.train({ maxSteps: 1 });
    });
    const kernels: Record<string, number> = {};
    for (const k of prof.kernels) kernels[k.name] = (kernels[k.name] ?? 0) + 1;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await t.train({ maxSteps: steps });
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    const r: StepFigures = {
      model,
      backend,
      msPerStep: round(ms / steps, 4),
      cpuMsPerStep: round((cpu.user + cpu.system) / 1000 / steps, 4),
      kernelsPerStep: prof.kernels.length,
      kernels,
    };
    process.stdout.write(JSON.stringify(r) + '\n');
    t.dispose();
  } finally {
    rmrf(dir);
  }
}

function stepInChild(backend: Backend, model: string, steps: number): Promise<StepFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, '--step', backend, model, String(steps)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{'))
        reject(new Error(`step child ${backend} ${model}: exit ${code}\n${err}`));
      else resolve(JSON.parse(line) as StepFigures);
    });
  });
}

async function main(): Promise<void> {
  const rounds = numArg('--rounds', QUICK ? 1 : 5);
  const steps = numArg('--steps', QUICK ? 100 : 1000);
  const models = Object.keys(MODELS);
  const e2e: EndToEnd[] = [];
  const perStep: StepFigures[] = [];
  for (let r = 0; r < rounds; r++) {
    // Backends alternate within each pair, and the first of a pair alternates between rounds.
    const order: Backend[] = r % 2 ? ['wasm', 'tensorflow'] : ['tensorflow', 'wasm'];
    for (const model of models) {
      for (const backend of order) {
        const res = await endToEnd(model, backend, r);
        log(
          `round ${r + 1}/${rounds} ${model} ${backend}: ${res.wallS} s (training ${res.trainS} s, ${res.steps} steps)`,
        );
        e2e.push(res);
      }
      for (const backend of order) perStep.push(await stepInChild(backend, model, steps));
    }
  }

  const summary = models.map((model) => {
    const of = (b: Backend) => e2e.filter((x) => x.model === model && x.backend === b);
    const stepOf = (b: Backend) => perStep.filter((x) => x.model === model && x.backend === b);
    const pairs = of('tensorflow').map((t, i) => t.wallS / of('wasm')[i].wallS);
    const trainPairs = of('tensorflow').map((t, i) => t.trainS / of('wasm')[i].trainS);
    const shas = (b: Backend) => [...new Set(of(b).map((x) => x.weightsSha256))];
    return {
      model,
      steps: of('wasm')[0].steps,
      wallS: {
        tensorflow: summarize(of('tensorflow').map((x) => x.wallS)),
        wasm: summarize(of('wasm').map((x) => x.wallS)),
      },
      trainS: {
        tensorflow: summarize(of('tensorflow').map((x) => x.trainS)),
        wasm: summarize(of('wasm').map((x) => x.trainS)),
      },
      /** tensorflow / wasm per interleaved pair: the goal is ≤ 1 end to end. */
      wallRatio: summarize(pairs),
      trainRatio: summarize(trainPairs),
      msPerStep: {
        tensorflow: summarize(stepOf('tensorflow').map((x) => x.msPerStep)),
        wasm: summarize(stepOf('wasm').map((x) => x.msPerStep)),
      },
      cpuMsPerStep: {
        tensorflow: summarize(stepOf('tensorflow').map((x) => x.cpuMsPerStep)),
        wasm: summarize(stepOf('wasm').map((x) => x.cpuMsPerStep)),
      },
      kernelsPerStep: { tensorflow: stepOf('tensorflow')[0].kernels, wasm: stepOf('wasm')[0].kernels },
      /** Each backend gives the same weights every round (exact runs), and the two backends differ (their numerics). */
      weightsSha256: { tensorflow: shas('tensorflow'), wasm: shas('wasm') },
    };
  });

  table(
    'end to end (durable-train main), seconds: median (min-max); tensorflow / wasm per pair',
    summary.map((s) => ({
      model: s.model,
      steps: s.steps,
      tensorflow: `${s.wallS.tensorflow.median} (${s.wallS.tensorflow.min}-${s.wallS.tensorflow.max})`,
      wasm: `${s.wallS.wasm.median} (${s.wallS.wasm.min}-${s.wallS.wasm.max})`,
      ratio: `${s.wallRatio.median} (${s.wallRatio.min}-${s.wallRatio.max})`,
      'training tf': s.trainS.tensorflow.median,
      'training wasm': s.trainS.wasm.median,
      'training ratio': s.trainRatio.median,
    })),
  );
  table(
    'one step in process: ms per step (wall, CPU), kernels per step',
    summary.map((s) => ({
      model: s.model,
      'tf wall': s.msPerStep.tensorflow.median,
      'tf cpu': s.cpuMsPerStep.tensorflow.median,
      'tf kernels': Object.values(s.kernelsPerStep.tensorflow).reduce((a, b) => a + b, 0),
      'wasm wall': s.msPerStep.wasm.median,
      'wasm cpu': s.cpuMsPerStep.wasm.median,
      'wasm kernels': Object.values(s.kernelsPerStep.wasm).reduce((a, b) => a + b, 0),
    })),
  );
  emit({ bench: 'small-models', machine: machine('tensorflow, wasm'), rounds, steps, summary, runs: e2e, perStep });
}

const stepAt = process.argv.indexOf('--step');
const run =
  stepAt >= 0
    ? stepChild(process.argv[stepAt + 1] as Backend, process.argv[stepAt + 2], Number(process.argv[stepAt + 3]))
    : main();
run.catch((e: unknown) => {
  log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
