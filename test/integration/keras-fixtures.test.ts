// The converted Keras models of test/fixtures/keras (scripts/keras-fixtures/make.py) end to end: one dev server, one
// real worker process running the five fixtures at once (mlp-bn-l2, cnn, residual-cnn on MNIST images; lstm-text on
// integer token sequences; binary on scikit-learn's breast-cancer CSV). The worker is SIGKILLed while every run is
// inside a chunk; a fresh worker finishes them, each with the weights of the same spec trained without interruption.
// Each run's export then loads in Keras (the TensorFlow wheel in .tools/venv) and predicts what durable-train does.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { WorkflowHandle } from '@temporalio/client';
import { loadForInference, startTraining } from '../../index';
import { exportCommand } from '../../cli/export';
import type { Out } from '../../cli/common';
import { temporalSettings } from '../../cli/connection';
import { PROJECT_ROOT } from '../../cli/tools';
import { validateSpec, type RunSpec } from '../../spec';
import { withRunDefaults } from '../../spec/helpers';
import { loadDataset, Trainer } from '../../training';
import { initBackend } from '../../training/backend';
import { progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { BREAST_CANCER_CSV, binarySpec } from '../helpers/breast-cancer';
import { DIST, spawnWorker, startCluster, waitFor, type TestCluster, type WorkerProcess } from '../helpers/cluster';
import { runningChunk, TEST_HEARTBEAT_S } from '../helpers/fixtures';
import { registerTokenSequences, TOKEN_DATASET, tokenSequences } from '../helpers/token-sequences';

const PYTHON = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'python');
const CHECK_EXPORT = path.join(PROJECT_ROOT, 'scripts', 'keras-fixtures', 'check-export.py');
const KERAS_WORKER = path.join(DIST, 'test', 'helpers', 'keras-worker.js');
const fixture = (name: string) => ({
  tfjs: `file://${path.join(PROJECT_ROOT, 'test', 'fixtures', 'keras', name, 'model.json')}`,
});

/** Rows of each run that Keras and durable-train predict: a few of its test rows, as a user would give them. */
const ROWS = 4;

describe('converted Keras fixtures with a real worker: SIGKILLed mid-chunk, exact, and their exports in Keras', function () {
  this.timeout(600_000);
  let cluster: TestCluster;
  const workers: WorkerProcess[] = [];
  const worker = async (env: NodeJS.ProcessEnv = {}) => {
    // Five slots: the runs train at once, so the one kill lands inside a chunk of every one of them.
    const w = spawnWorker(cluster, { script: KERAS_WORKER, env: { DURABLE_TRAIN_SLOTS: '5', ...env } });
    workers.push(w);
    await w.ready;
    return w;
  };

  before(async function () {
    // Fails here, loudly, when the tool venv is missing: the Keras half of the test cannot be skipped.
    assert.ok(fs.existsSync(PYTHON), `${PYTHON} is missing: run npm run setup:native (it installs TensorFlow)`);
    cluster = await startCluster();
    registerTokenSequences(); // for the in-process reference runs and export
    await initBackend();
  });
  after(async function () {
    for (const w of workers.splice(0)) await w.kill('SIGKILL');
    await cluster?.close();
  });

  it('five fixtures killed mid-chunk resume to their uninterrupted weights; Keras predicts their exports alike', async function () {
    const checkpoint = { storage: `file://${path.join(cluster.dir, 'ck')}`, keepLatest: 3 };
    // Small runs: 2 epochs in chunks of 5 steps; the short test heartbeat timeout has the killed chunks retried soon.
    const common = {
      epochs: 2,
      batchSize: 32,
      chunkSteps: 5,
      heartbeatTimeoutSeconds: TEST_HEARTBEAT_S,
      seed: 17,
      optimizer: { name: 'adam' as const, learningRate: 0.003 },
      checkpoint,
    };
    const mnist = { name: 'mnist', trainLimit: 320, testLimit: 100, validationFraction: 0 };
    const specs: Record<string, RunSpec> = {
      'mlp-bn-l2': validateSpec({ ...common, model: fixture('mlp-bn-l2'), dataset: mnist }),
      cnn: validateSpec({ ...common, model: fixture('cnn'), dataset: mnist }),
      'residual-cnn': validateSpec({ ...common, model: fixture('residual-cnn'), dataset: mnist }),
      'lstm-text': validateSpec({
        ...common,
        model: fixture('lstm-text'),
        dataset: { registered: TOKEN_DATASET, validationFraction: 0 },
      }),
      binary: validateSpec(binarySpec({ ...common, metrics: ['auc'] })),
    };
    const names = Object.keys(specs);

    // Paced (every step 200 ms longer in wall time, same numbers): every run is still inside a chunk when all of
    // them have committed once, whatever the machine's speed.
    const w1 = await worker({ DURABLE_TRAIN_STEP_DELAY_MS: '200' });
    const settings = temporalSettings(cluster.env);
    const handles = new Map<string, WorkflowHandle>();
    for (const name of names)
      handles.set(name, await startTraining(cluster.client, specs[name], { runId: name, settings }));

    // What each run was doing at the last look: the failure message says which one never got there.
    const last = new Map<string, string>();
    const inChunk = await waitFor(
      'every run past a commit and inside a chunk on the first worker',
      async () => {
        const seen: Array<{ name: string; step: number | null; total: number }> = [];
        for (const [name, handle] of handles) {
          const progress = await handle.query(progressQuery);
          last.set(
            name,
            `step ${progress.step}/${progress.totalSteps}, committed ${progress.lastCheckpoint?.step ?? '-'}`,
          );
          if (!progress.lastCheckpoint) return null;
          const chunk = await runningChunk(handle);
          if (!chunk?.identity.startsWith(`${w1.proc.pid}@`)) return null;
          seen.push({ name, step: chunk.step ?? progress.step, total: progress.totalSteps });
        }
        return seen;
      },
      300_000,
      50,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}\nruns: ${JSON.stringify(Object.fromEntries(last))}\nworker: ${w1.output().slice(-3000)}`,
      );
    });
    await w1.kill('SIGKILL');
    for (const s of inChunk) assert.ok(s.step! < s.total, `${s.name} killed inside a chunk (${s.step} of ${s.total})`);
    await worker();
    const results = new Map<string, RunResult>();
    for (const [name, handle] of handles) results.set(name, (await handle.result()) as RunResult);

    // The same specs trained here without interruption (same backend as the worker's).
    for (const name of names) {
      const result = results.get(name)!;
      assert.equal(result.status, 'completed', name);
      assert.ok(result.recoveries >= 1, `${name} recovered from the kill: ${JSON.stringify(result)}`);
      // As start recorded the spec (its defaults: statistics from the training rows alone).
      const t = await Trainer.create(withRunDefaults(specs[name]));
      try {
        while (!t.done) await t.train({ maxSteps: 1000 });
        assert.equal(result.step, t.state.step, name);
        assert.equal(result.weightsSha256, t.weightsSha256(), `${name}: the uninterrupted run's weights`);
      } finally {
        t.dispose();
      }
    }

    // Exports in Keras: durable-train's predictions (its predict path, on raw rows) beside Keras's on the export.
    const quiet: Out = { json: true, emit: () => undefined };
    const args: string[] = [CHECK_EXPORT];
    for (const name of names) {
      const { x, shape } = rawRows(name);
      const out = path.join(cluster.dir, 'export', name);
      await exportCommand(cluster.client, quiet, { ref: name, out, bakePreprocessing: name === 'binary' });
      const model = await loadForInference({ run: name, client: cluster.client });
      let outputs: number[][];
      try {
        const preds = model.predictFeatures(x, ROWS);
        outputs = preds.map((p) => (name === 'binary' ? [p.probabilities![1]] : p.probabilities!));
      } finally {
        model.dispose();
      }
      const inputs = tf.tidy(() => tf.tensor(x, [ROWS, ...shape]).arraySync());
      const cases = path.join(out, 'cases.json');
      fs.writeFileSync(cases, JSON.stringify({ inputs, outputs, tolerance: 1e-5 }));
      args.push(out, cases);
    }
    // One Python process for all five (importing TensorFlow takes seconds); it exits 1 when a prediction differs.
    let lines: string[];
    try {
      lines = execFileSync(PYTHON, args, { encoding: 'utf8', timeout: 240_000, stdio: ['ignore', 'pipe', 'pipe'] })
        .trim()
        .split('\n');
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      throw new Error(`check-export.py failed:\n${e.stdout ?? ''}\n${e.stderr ?? String(err)}`);
    }
    const checked = lines.map((l) => JSON.parse(l) as { dir: string; ok: boolean; maxAbsDiff: number });
    assert.deepEqual(
      checked.map((c) => path.basename(c.dir)),
      names,
    );
    for (const c of checked) assert.ok(c.ok && c.maxAbsDiff <= 1e-5, JSON.stringify(c));
  });
});

/** The first test rows of a fixture's data as a user holds them (unstandardised), and one example's shape. */
function rawRows(name: string): { x: Float32Array; shape: number[] } {
  if (name === 'lstm-text') return { x: tokenSequences(320, 100).test.x.slice(0, ROWS * 20), shape: [20] };
  if (name === 'binary') {
    const lines = fs.readFileSync(BREAST_CANCER_CSV, 'utf8').trim().split('\n');
    const header = lines[0].split(',');
    const label = header.indexOf('target');
    const values = lines
      .slice(1, 1 + ROWS)
      .flatMap((l) => l.split(',').filter((_v, i) => i !== label))
      .map(Number);
    return { x: Float32Array.from(values), shape: [header.length - 1] };
  }
  const data = loadDataset({ name: 'mnist', testLimit: ROWS });
  return { x: data.test.images.slice(0, ROWS * 784), shape: [28, 28, 1] };
}
