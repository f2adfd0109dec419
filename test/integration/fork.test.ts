// Forks that tell the truth (real dev server, real worker): what an override changes takes effect from the fork point
// and is recorded; what it may not change is refused before anything starts; a fork never writes into another run;
// a fork from a finished run trains what its spec adds, or says there is nothing to train.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { TRAINING_WORKFLOW } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import type { TrainingInput } from '../../workflows/training';
import { validateSpec } from '../../spec';
import { cli, writeSpec, type TestCluster, type WorkerProcess } from '../helpers/cluster';
import { useCluster } from '../helpers/fixtures';

// 40 steps an epoch, 80 in all, four chunks; every checkpoint kept so any step can be forked.
const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 2000, testLimit: 200, validationFraction: 0 },
  epochs: 2,
  batchSize: 50,
  chunkSteps: 20,
  seed: 7,
  optimizer: { name: 'adam', learningRate: 0.001 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 100 },
};

interface StoredManifest {
  id: string;
  step: number;
  parent: { runId: string; id: string } | null;
  metrics: Record<string, number>;
  state: { schedule: { baseLearningRate: number; overrides: Array<{ step: number; learningRate: number }> } };
  blobs: Array<{ name: string; sha256: string }>;
}

describe('fork: changes take effect, refusals name the field, no fork writes into another run', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let cluster: TestCluster;
  let worker: WorkerProcess;
  let source: RunResult;

  const manifestsOf = (runId: string): StoredManifest[] => {
    const dir = path.join(cluster.dir, '.data', 'checkpoints', runId, 'manifests');
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as StoredManifest)
      .sort((a, b) => a.step - b.step);
  };
  const atStep = (runId: string, step: number) => {
    const m = manifestsOf(runId).find((x) => x.step === step);
    assert.ok(m, `${runId} has a checkpoint at step ${step}`);
    return m;
  };
  const fork = (from: string, override: object, runId: string, wait = true) => {
    const file = writeSpec(cluster.dir, `${runId}.override.json`, override);
    return cli(cluster, [
      'fork',
      '--from',
      from,
      '--spec-override',
      file,
      '--run-id',
      runId,
      ...(wait ? ['--wait'] : []),
      '--json',
    ]);
  };
  const forkResult = (from: string, override: object, runId: string): RunResult => {
    const r = fork(from, override, runId);
    assert.equal(r.code, 0, r.stderr + worker.output());
    return r.json<{ result: RunResult }>().result;
  };
  const exists = async (runId: string) =>
    cluster.client.workflow
      .getHandle(runId)
      .describe()
      .then(
        () => true,
        (err: unknown) => {
          if (err instanceof WorkflowNotFoundError) return false;
          throw err;
        },
      );
  const run = (runId: string, s: object): RunResult => {
    const r = cli(cluster, [
      'start',
      '--spec',
      writeSpec(cluster.dir, `${runId}.json`, s),
      '--run-id',
      runId,
      '--wait',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr + worker.output());
    return r.json<{ result: RunResult }>().result;
  };

  before(async function () {
    cluster = fx.cluster;
    worker = await fx.worker();
    source = run('src', spec);
    assert.equal(source.step, 80);
  });

  it('a fork with a new learning rate trains with it from the fork point, and the manifests record it', async function () {
    const mid = atStep('src', 40);
    const same = forkResult(`src:${mid.id}`, {}, 'f-same');
    assert.equal(same.weightsSha256, source.weightsSha256, '{} reproduces the source bitwise');

    const lr = forkResult(`src:${mid.id}`, { optimizer: { learningRate: 0.05 } }, 'f-lr');
    assert.equal(lr.step, 80);
    assert.notEqual(lr.weightsSha256, source.weightsSha256, 'the new rate changed the training');
    const ms = manifestsOf('f-lr');
    assert.ok(ms.length >= 2);
    assert.deepEqual(ms[0].parent, { runId: 'src', id: mid.id }, 'the fork starts at the source checkpoint');
    for (const m of ms) {
      assert.equal(m.metrics.learningRate, 0.05, `${m.id} records the fork's rate`);
      assert.equal(m.state.schedule.baseLearningRate, 0.05);
      assert.deepEqual(m.state.schedule.overrides, [{ step: 40, learningRate: 0.05 }]);
    }
    // The source is untouched.
    for (const m of manifestsOf('src')) assert.equal(m.metrics.learningRate, 0.001);
  });

  it('a fork may change the optimizer: its slots start from zero, the old ones are gone', async function () {
    const mid = atStep('src', 40);
    const r = forkResult(`src:${mid.id}`, { optimizer: { name: 'momentum', learningRate: 0.01 } }, 'f-opt');
    assert.equal(r.step, 80);
    assert.notEqual(r.weightsSha256, source.weightsSha256);
    const last = manifestsOf('f-opt').at(-1)!;
    const names = last.blobs.map((b) => b.name);
    assert.ok(names.includes('opt/momentum/iterations'), names.join(', '));
    assert.ok(!names.some((n) => n.startsWith('opt/adam/')), `no adam slots left: ${names.join(', ')}`);
    assert.equal(last.metrics.learningRate, 0.01);
  });

  it('refuses, naming the field, what a fork cannot change, and starts nothing', async function () {
    const cases: Array<[object, RegExp]> = [
      [{ model: 'mnist-cnn' }, /\bmodel: cannot change in a fork/],
      [{ batchSize: 25 }, /\bbatchSize: cannot change in a fork/],
      [{ dataset: { trainLimit: 1000 } }, /dataset\.trainLimit: cannot change in a fork/],
      [{ seed: 8 }, /\bseed: cannot change in a fork/],
    ];
    for (const [i, [override, message]] of cases.entries()) {
      const r = fork('src', override, `f-bad-${i}`);
      assert.equal(r.code, 2, `${JSON.stringify(override)}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.ok(!(await exists(`f-bad-${i}`)), 'nothing was started');
    }
  });

  it('a fork into an existing run id is refused and writes nothing there', async function () {
    const before = manifestsOf('src').map((m) => m.id);
    for (const id of ['src', 'f-same']) {
      const r = fork('src', { optimizer: { learningRate: 0.5 } }, id);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`run ${id} already exists`));
    }
    assert.deepEqual(
      manifestsOf('src').map((m) => m.id),
      before,
    );
    const again = cli(cluster, ['status', 'src', '--json']).json<{ result: RunResult | null }>();
    assert.equal(again.result?.weightsSha256, source.weightsSha256, "the source's result is unchanged");
  });

  it('a fork from the final checkpoint trains the epochs it adds, exactly as a longer run; with none added it says so', async function () {
    const end = atStep('src', 80);
    const nothing = fork(`src:${end.id}`, {}, 'f-nothing');
    assert.equal(nothing.code, 2, nothing.stderr);
    assert.match(nothing.stderr, /nothing left to train/);
    assert.ok(!(await exists('f-nothing')));

    const longer = forkResult(`src:${end.id}`, { epochs: 3 }, 'f-longer');
    assert.equal(longer.step, 120);
    assert.ok(longer.weightsSha256 && longer.accuracy !== null && longer.backend, JSON.stringify(longer));
    const straight = run('straight-3', { ...spec, epochs: 3 });
    assert.equal(longer.weightsSha256, straight.weightsSha256, 'fork + 1 epoch equals a 3-epoch run');
  });

  it('the worker refuses the same things for callers that bypass the CLI', async function () {
    const end = atStep('src', 80);
    const base = validateSpec(spec);
    const start = (workflowId: string, input: TrainingInput) =>
      cluster.client.workflow.start(TRAINING_WORKFLOW, { workflowId, taskQueue: cluster.taskQueue, args: [input] });
    const failure = async (p: Promise<unknown>) => {
      const err = await p.then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError, String(err));
      let c: Error | undefined = err;
      let text = '';
      while (c) {
        text += ` ${c.message}`;
        c = (c as { cause?: Error }).cause;
      }
      return text;
    };
    const h1 = await start('lib-nothing', { spec: base, from: { runId: 'src', id: end.id }, sourceSpec: base });
    assert.match(await failure(h1.result()), /nothing left to train/);
    const h2 = await start('lib-model', {
      spec: validateSpec({ ...spec, model: 'mnist-cnn', epochs: 3 }),
      from: { runId: 'src', id: end.id },
      sourceSpec: base,
    });
    assert.match(await failure(h2.result()), /model: cannot change in a fork/);
    const h3 = await start('src-2', {
      spec: { ...base, epochs: 3 },
      from: { runId: 'src-2', id: end.id },
      sourceSpec: base,
    });
    assert.match(await failure(h3.result()), /run src-2 cannot be forked into itself/);
  });
});
