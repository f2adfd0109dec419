// Another replica count at resume or fork, end to end: real dev server, a real worker, the CLI as users run it. A
// 2-replica run forked mid-epoch onto 3 replicas and onto 1 completes with the steps the new layout gives and the
// accuracy of the unchanged run; a finished run resumed with more epochs on 3 replicas goes on from its epoch end; the
// change is in the checkpoints' lineage; without resume.allowTopologyChange both are refused, naming both counts.
// (Which examples each step trains across a change is asserted in process: test/unit/topology.test.ts.)
import * as assert from 'node:assert/strict';
import type { RunResult } from '../../workflows/progress';
import { cli, writeSpec } from '../helpers/cluster';
import { smallSpec, useCluster } from '../helpers/fixtures';

// 1,200 examples, 2 replicas: shards of 600 = 24 steps of 25 per epoch, 4 epochs, rounds of 5 steps (cut at epoch
// ends): checkpoints at steps 5, 10, 15, 20, 24, 29, 34, ...
const ref = smallSpec({
  dataset: { name: 'mnist', trainLimit: 1200, testLimit: 1000, validationFraction: 0 },
  batchSize: 25,
  epochs: 4,
  // Replicas train in the worker's own event loop: distributed runs keep the default heartbeat timeout.
  heartbeatTimeoutSeconds: undefined,
  distributed: { replicas: 2, syncEverySteps: 5 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 100 },
});
const ALLOW = { resume: { allowTopologyChange: true } };

describe('resume and fork on another replica count', function () {
  this.timeout(900_000);
  const fx = useCluster();

  const completed = (r: ReturnType<typeof cli>): RunResult => {
    assert.equal(r.code, 0, r.stderr);
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.status, 'completed');
    return result;
  };
  const fork = (name: string, from: string, override: object) =>
    cli(fx.cluster, [
      'fork',
      '--from',
      from,
      '--spec-override',
      writeSpec(fx.cluster.dir, `${name}.json`, override),
      '--run-id',
      name,
      '--wait',
      '--json',
    ]);
  /** The topology a run's checkpoints record, oldest first (absent before a change). */
  const changesOf = (runId: string) =>
    fx
      .manifests(runId)
      .sort((a, b) => a.step - b.step)
      .map((m) => (m.state.topology?.changes ?? []) as Array<{ step: number; from: number; to: number }>);

  let reference: RunResult;
  let mid: { id: string; step: number };

  before(async function () {
    await fx.worker();
    const file = writeSpec(fx.cluster.dir, 'ref.json', ref);
    reference = completed(cli(fx.cluster, ['start', '--spec', file, '--run-id', 'ref', '--wait', '--json']));
    assert.equal(reference.step, 96);
    // Step 34: epoch 2, 10 of its 24 batches trained by each replica.
    mid = fx.manifests('ref').find((m) => m.step === 34);
    assert.ok(mid, 'keepLatest 100 kept the round checkpoint at step 34');
  });

  it('a fork onto 3 replicas mid-epoch shares the rest of the epoch out, then trains epochs of 3 shards', function () {
    const result = completed(fork('to-3', `ref:${mid.id}`, { distributed: { replicas: 3 }, ...ALLOW }));
    // 2 x 14 batches of 25 = 700 examples left: 3 replicas of at most 234, 10 steps; then 2 epochs of 400 / 25 = 16.
    assert.equal(result.step, 34 + 10 + 2 * 16);
    assert.equal(result.totalSteps, 76);
    assert.ok(
      result.accuracy! >= reference.accuracy! - 0.005,
      `accuracy ${result.accuracy} against the unchanged run's ${reference.accuracy}`,
    );
    const changes = changesOf('to-3');
    assert.deepEqual(changes[0], [{ step: 34, epoch: 1, from: 2, to: 3 }]);
    assert.deepEqual(changes[changes.length - 1], changes[0], 'every later checkpoint keeps the record');
    // The epoch under way ended at its new end: the checkpoint there is epoch 2's first.
    const atAnchor = fx.manifests('to-3').find((m) => m.step === 44);
    assert.ok(atAnchor, 'a round ends at the transition end, step 44');
    assert.equal(atAnchor.epoch, 2);
  });

  it('a fork onto 1 replica goes on from the same checkpoint', function () {
    const result = completed(fork('to-1', `ref:${mid.id}`, { distributed: { replicas: 1 }, ...ALLOW }));
    // 700 examples left in batches of 25: 28 steps; then 2 epochs of 1,200 / 25 = 48.
    assert.equal(result.step, 34 + 28 + 2 * 48);
    assert.ok(
      result.accuracy! >= reference.accuracy! - 0.005,
      `accuracy ${result.accuracy} against the unchanged run's ${reference.accuracy}`,
    );
    assert.deepEqual(changesOf('to-1')[0], [{ step: 34, epoch: 1, from: 2, to: 1 }]);
    // The fork tree shows each run's replica count.
    const tree = cli(fx.cluster, ['lineage', 'to-1']);
    assert.equal(tree.code, 0, tree.stderr);
    assert.match(tree.stdout, /^ref \[completed\] 2 replicas$/m);
    assert.match(tree.stdout, /to-3 \[completed\] 3 replicas \(from /);
    assert.match(tree.stdout, /to-1 \[completed\] 1 replica \(from .*<--$/m);
  });

  it('without resume.allowTopologyChange, a fork and a resume on another count are refused naming both counts', function () {
    const r = fork('refused-3', `ref:${mid.id}`, { distributed: { replicas: 3 } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /trained by 2 replicas, the spec has 3 replicas \(distributed\.replicas\)/);
    assert.equal(cli(fx.cluster, ['status', 'refused-3']).code, 3, 'nothing was started');
    const more = writeSpec(fx.cluster.dir, 'ref-3.json', {
      ...ref,
      epochs: 6,
      distributed: { replicas: 3, syncEverySteps: 5 },
    });
    const resume = cli(fx.cluster, ['start', '--spec', more, '--run-id', 'ref', '--json']);
    assert.equal(resume.code, 2, resume.stderr);
    assert.match(
      resume.stderr,
      /run ref cannot continue with this spec: checkpoint .*trained by 2 replicas, the spec has 3 replicas/,
    );
    assert.match(resume.stderr, /resume\.allowTopologyChange/);
  });

  it('a finished run resumed with more epochs on 3 replicas goes on from its epoch end, and back as a single run', function () {
    const more = writeSpec(fx.cluster.dir, 'ref-3-allowed.json', {
      ...ref,
      epochs: 6,
      distributed: { replicas: 3, syncEverySteps: 5 },
      ...ALLOW,
    });
    const result = completed(cli(fx.cluster, ['start', '--spec', more, '--run-id', 'ref', '--wait', '--json']));
    // At an epoch end nothing is left to share: two more epochs of 16 steps.
    assert.equal(result.step, 96 + 2 * 16);
    const newest = fx.manifests('ref').sort((a, b) => b.step - a.step)[0];
    assert.deepEqual(newest.state.topology.changes, [{ step: 96, epoch: 4, from: 2, to: 3 }]);
    assert.equal(newest.state.topology.transition, null);

    // The same run as a single one (no distributed block), one more epoch of 1,200 / 25 = 48 steps.
    const single: Record<string, unknown> = { ...ref, epochs: 7, ...ALLOW };
    delete single.distributed;
    const file = writeSpec(fx.cluster.dir, 'ref-single.json', single);
    const last = completed(cli(fx.cluster, ['start', '--spec', file, '--run-id', 'ref', '--wait', '--json']));
    assert.equal(last.step, 128 + 48);
    const end = fx.manifests('ref').sort((a, b) => b.step - a.step)[0];
    assert.equal(end.state.distributed, undefined, 'a single run records no distributed state');
    assert.deepEqual(
      end.state.topology.changes.map((c: { from: number; to: number }) => [c.from, c.to]),
      [
        [2, 3],
        [3, 1],
      ],
    );
    // The run's checkpoints from before the changes still evaluate, each in its own layout.
    const ev = cli(fx.cluster, ['evaluate', `ref:${mid.id}`, '--json']);
    assert.equal(ev.code, 0, ev.stderr);
    const evaluated = ev.json<{ checkpoint: { step: number }; accuracy: number }>();
    assert.equal(evaluated.checkpoint.step, 34);
    assert.ok(evaluated.accuracy > 0.5, `accuracy ${evaluated.accuracy}`);
  });
});
