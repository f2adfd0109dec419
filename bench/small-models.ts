// Small models on the tensorflow backend against wasm: scikit-learn-sized data (digits: 1,797 rows of 64 pixels;
// breast-cancer: 569 rows of 30 features; test/fixtures/data), batch 32, Adam. Three parts, each backend in fresh
// processes, interleaved round by round:
//   - end to end, as a user runs it: `durable-train main --spec ...` (its own dev server, a worker, the run), the
//     process's wall time, and of it the training span (from the worker's backend line to the run's result), with
//     DURABLE_TRAIN_BACKEND=tensorflow, =wasm, and unset ('auto': the default, which on a machine with the native
//     backend trains a small model on wasm: training/backend-choice.ts);
//   - one step in process: the Trainer alone (warmed up), wall and CPU ms per step and the kernels tfjs runs per
//     step (tf.profile), which is where a small model's time goes;
//   - the crossover: one step in process of larger MLPs and CNNs on both backends, with each model's weighted
//     multiply-adds per step (stepWork), which places the threshold of that choice.
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
/** A `main` run's backend setting: one named, or unset (auto). */
type Arm = Backend | 'auto';

const digits = {
  format: 'csv',
  path: `file://${path.join(DATA, 'digits.csv')}`,
  label: 'digit',
  validationFraction: 0.1,
};
const common = { batchSize: 32, seed: 3, optimizer: { name: 'adam', learningRate: 0.001 } };

/** An MLP: relu layers of `hidden` units, then `units` outputs. */
const mlp = (hidden: number[], units: number, activation: string) => ({
  layers: [
    ...hidden.map((n) => ({ type: 'dense', units: n, activation: 'relu' })),
    { type: 'dense', units, activation },
  ],
});

/** The three models (without checkpoint storage, which each run gets its own of). */
const MODELS: Record<string, Record<string, unknown>> = {
  'digits-mlp': {
    ...common,
    model: mlp([64], 10, 'softmax'),
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
    model: mlp([16], 1, 'sigmoid'),
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

const digitsMlp = (hidden: number[]) => ({ ...MODELS['digits-mlp'], model: mlp(hidden, 10, 'softmax') });
const digitsCnn = (filters: number) => {
  const m = MODELS['digits-cnn'].model as { layers: Array<Record<string, unknown>> };
  return {
    ...MODELS['digits-cnn'],
    model: { ...m, layers: m.layers.map((l) => (l.type === 'conv2d' ? { ...l, filters } : l)) },
  };
};
const mnist = (model: string) => ({ ...common, model, dataset: { name: 'mnist', trainLimit: 2000, testLimit: 100 } });

/** Larger models, one step in process only: where the two backends meet. */
const CROSSOVER: Record<string, Record<string, unknown>> = {
  'digits-mlp-256x2': digitsMlp([256, 256]),
  'digits-mlp-512x2': digitsMlp([512, 512]),
  'digits-mlp-1024x2': digitsMlp([1024, 1024]),
  'digits-cnn-64': digitsCnn(64),
  'digits-cnn-128': digitsCnn(128),
  'mnist-mlp': mnist('mnist-mlp'),
  'mnist-cnn': mnist('mnist-cnn'),
};
const specOf = (model: string) => MODELS[model] ?? CROSSOVER[model];

interface EndToEnd {
  model: string;
  backend: Arm;
  /** The backend the run trained on (its checkpoints' backend). */
  trainedOn: string;
  wallS: number;
  trainS: number;
  steps: number;
  weightsSha256: string;
}

/** One `main` run of `model` on `backend`, from a clean directory: its wall time and its training span. */
async function endToEnd(model: string, backend: Arm, rep: number): Promise<EndToEnd> {
  const dir = tmpDir('dt-small-');
  try {
    const specFile = path.join(dir, 'spec.json');
    const spec = { ...MODELS[model], checkpoint: { storage: `file://${path.join(dir, 'checkpoints')}` } };
    fs.writeFileSync(specFile, JSON.stringify(spec));
    const args = ['main', '--spec', specFile, '--run-id', `${model}-${backend}-${rep}`];
    args.push('--port', String(await freePort()), '--ui-port', String(await freePort()));
    args.push('--db', path.join(dir, 'temporal.sqlite'));
    const env = { ...process.env, DURABLE_TRAIN_BACKEND: backend === 'auto' ? '' : backend };
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
    const on = /backend (\w+) {2}chunks/.exec(out);
    if (code !== 0 || !steps || !sha || !on || Number.isNaN(backendAt) || Number.isNaN(doneAt))
      throw new Error(`${model} on ${backend}: exit ${code}\n${out.slice(-2000)}`);
    if (backend !== 'auto' && on[1] !== backend)
      throw new Error(`${model}: the run trained on ${on[1]}, not ${backend}`);
    return {
      model,
      backend,
      trainedOn: on[1],
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
  /** Weighted multiply-adds per step (training/backend-choice.ts stepWork). */
  stepWork: number;
}

/** Child mode (`--step BACKEND MODEL STEPS`): the Trainer alone on one backend, one JSON line on stdout. */
async function stepChild(backend: Backend, model: string, steps: number): Promise<void> {
  const tf = await import('@tensorflow/tfjs');
  const { initBackend } = await import('../training/backend');
  const { Trainer } = await import('../training/trainer');
  const { stepWork } = await import('../training/backend-choice');
  const { validateSpec } = await import('../spec');
  await initBackend(backend);
  const dir = tmpDir('dt-small-step-');
  try {
    const spec = validateSpec({
      ...specOf(model),
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
      stepWork: stepWork(t.layersModel, spec.batchSize),
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
    // The arms rotate within each triple, and the first of a triple rotates between rounds.
    const arms: Arm[] = ['tensorflow', 'wasm', 'auto'];
    const order = [...arms.slice(r % 3), ...arms.slice(0, r % 3)];
    const pair: Backend[] = r % 2 ? ['wasm', 'tensorflow'] : ['tensorflow', 'wasm'];
    for (const model of models) {
      for (const arm of order) {
        const res = await endToEnd(model, arm, r);
        log(
          `round ${r + 1}/${rounds} ${model} ${arm}: ${res.wallS} s on ${res.trainedOn} (training ${res.trainS} s, ${res.steps} steps)`,
        );
        e2e.push(res);
      }
      for (const backend of pair) perStep.push(await stepInChild(backend, model, steps));
    }
    // Fewer steps for the crossover's larger models: the mnist-cnn takes 40 ms a step on wasm.
    for (const model of Object.keys(CROSSOVER))
      for (const backend of pair) perStep.push(await stepInChild(backend, model, Math.max(20, steps / 5)));
  }

  const stepsOf = (model: string, b: Backend) => perStep.filter((x) => x.model === model && x.backend === b);
  const summary = models.map((model) => {
    const of = (b: Arm) => e2e.filter((x) => x.model === model && x.backend === b);
    const ratio = (a: Arm, b: Arm, f: (x: EndToEnd) => number) => of(a).map((x, i) => f(x) / f(of(b)[i]));
    const figures = (f: (x: EndToEnd) => number) => ({
      tensorflow: summarize(of('tensorflow').map(f)),
      wasm: summarize(of('wasm').map(f)),
      auto: summarize(of('auto').map(f)),
    });
    const stepFigures = (f: (x: StepFigures) => number) => ({
      tensorflow: summarize(stepsOf(model, 'tensorflow').map(f)),
      wasm: summarize(stepsOf(model, 'wasm').map(f)),
    });
    const shas = (b: Arm) => [...new Set(of(b).map((x) => x.weightsSha256))];
    return {
      model,
      steps: of('wasm')[0].steps,
      stepWork: stepsOf(model, 'wasm')[0].stepWork,
      /** What the run trained on with DURABLE_TRAIN_BACKEND unset. */
      autoTrainedOn: [...new Set(of('auto').map((x) => x.trainedOn))],
      wallS: figures((x) => x.wallS),
      trainS: figures((x) => x.trainS),
      /** tensorflow / wasm per interleaved pair. */
      wallRatio: summarize(ratio('tensorflow', 'wasm', (x) => x.wallS)),
      /** auto (the default with the native backend built) / wasm: the goal is ≤ 1 end to end. */
      autoWallRatio: summarize(ratio('auto', 'wasm', (x) => x.wallS)),
      trainRatio: summarize(ratio('tensorflow', 'wasm', (x) => x.trainS)),
      autoTrainRatio: summarize(ratio('auto', 'wasm', (x) => x.trainS)),
      msPerStep: stepFigures((x) => x.msPerStep),
      cpuMsPerStep: stepFigures((x) => x.cpuMsPerStep),
      kernelsPerStep: { tensorflow: stepsOf(model, 'tensorflow')[0].kernels, wasm: stepsOf(model, 'wasm')[0].kernels },
      /** Each arm gives the same weights every round (exact runs); auto's are wasm's where it trained on wasm. */
      weightsSha256: { tensorflow: shas('tensorflow'), wasm: shas('wasm'), auto: shas('auto') },
    };
  });
  const crossover = [...models, ...Object.keys(CROSSOVER)].map((model) => {
    const tf = summarize(stepsOf(model, 'tensorflow').map((x) => x.msPerStep));
    const wasm = summarize(stepsOf(model, 'wasm').map((x) => x.msPerStep));
    return {
      model,
      stepWork: stepsOf(model, 'wasm')[0].stepWork,
      msPerStep: { tensorflow: tf, wasm },
      /** wasm / tensorflow ms per step: below 1, wasm is faster. */
      wasmOverTf: round(wasm.median / tf.median, 3),
    };
  });

  const range = (x: { median: number; min: number; max: number }) => `${x.median} (${x.min}-${x.max})`;
  table(
    'end to end (durable-train main), seconds: median (min-max); ratios per interleaved triple',
    summary.map((s) => ({
      model: s.model,
      steps: s.steps,
      tensorflow: range(s.wallS.tensorflow),
      wasm: range(s.wallS.wasm),
      auto: `${range(s.wallS.auto)} on ${s.autoTrainedOn.join('/')}`,
      'tf / wasm': range(s.wallRatio),
      'auto / wasm': range(s.autoWallRatio),
      'training tf / auto / wasm': `${s.trainS.tensorflow.median} / ${s.trainS.auto.median} / ${s.trainS.wasm.median}`,
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
  table(
    'crossover: ms per step by weighted multiply-adds per step (threshold 4 M: at or below, a new run trains on wasm)',
    crossover.map((c) => ({
      model: c.model,
      'M per step': round(c.stepWork / 1e6, 2),
      tf: c.msPerStep.tensorflow.median,
      wasm: c.msPerStep.wasm.median,
      'wasm / tf': c.wasmOverTf,
    })),
  );
  emit({
    bench: 'small-models',
    machine: machine('tensorflow, wasm'),
    rounds,
    steps,
    summary,
    crossover,
    runs: e2e,
    perStep,
  });
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
