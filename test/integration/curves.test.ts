// Training curves end to end: a run whose worker is SIGKILLed mid-chunk, and whose next worker kills itself between
// a commit's metrics segment and its manifest, ends with a metrics log equal step for step to the uninterrupted
// run's, and TensorBoard (its own reader) shows each step once with the same values; a fork is a run of its own;
// the report draws the log; status shows a finished run's final train metrics.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FsCheckpointStore } from '../../checkpoint';
import { readMetricsLog, segmentSteps } from '../../telemetry/metrics-log';
import { TAGS } from '../../telemetry/tensorboard';
import type { RunResult } from '../../workflows/progress';
import { cli, waitFor, writeSpec } from '../helpers/cluster';
import { runningChunk, deterministicLog, smallSpec, useCluster } from '../helpers/fixtures';
import { tensorboardRead } from '../helpers/tensorboard-read';
import { countColor, decodePng } from '../ui/png-inspect';

// 24 steps (2 epochs of 12), chunks of 8: commits at 8, 16, 24.
const spec = smallSpec({ chunkSteps: 8 });

describe('training curves', function () {
  const fx = useCluster();

  it('a run killed mid-chunk and at a commit has the metrics log and TensorBoard curves of the uninterrupted run', async function () {
    const { cluster } = fx;
    const file = writeSpec(cluster.dir, 'curves.json', spec);
    const root = path.join(cluster.dir, '.data', 'checkpoints');
    const store = new FsCheckpointStore(root);

    let worker = await fx.worker();
    const ref = cli(cluster, ['start', '--spec', file, '--run-id', 'curves-ref', '--wait', '--json']);
    assert.equal(ref.code, 0, ref.stderr + worker.output());
    assert.equal(ref.json<{ result: RunResult }>().result.step, 24);
    await worker.kill('SIGTERM');

    // Paced (each step 150 ms longer, same numbers): the second chunk (steps 9..16) runs over a second, so the kill
    // after its first heartbeats lands inside it.
    worker = await fx.worker({ paced: { stepMs: 150 } });
    const started = cli(cluster, ['start', '--spec', file, '--run-id', 'curves-kill', '--json']);
    assert.equal(started.code, 0, started.stderr);
    const handle = cluster.client.workflow.getHandle('curves-kill');
    const seen = await waitFor(
      'the second chunk to be under way',
      async () => {
        const c = await runningChunk(handle);
        return c && c.step !== null && c.step >= 10 ? c : null;
      },
      120_000,
      50,
    );
    assert.ok(seen.step! < 16, `killed inside the second chunk (step ${seen.step})`);
    await worker.kill('SIGKILL');
    // The next worker dies during the commit at step 24, after that chunk's metrics segment was written and before
    // its manifest: a segment of work that never committed.
    worker = await fx.worker({ env: { DURABLE_TRAIN_FAILPOINT: 'kill-before-manifest:24' } });
    await worker.exited;
    assert.match(worker.output(), /failpoint: killing myself during the commit of step 24/);
    assert.ok((await segmentSteps(store, 'curves-kill')).includes(24), 'the uncommitted segment was written');
    worker = await fx.worker();
    const result = (await handle.result()) as RunResult;
    assert.equal(result.step, 24);
    assert.ok(result.recoveries >= 2, `two recoveries, got ${result.recoveries}`);

    const refLog = await readMetricsLog(store, 'curves-ref', 24);
    const killLog = await readMetricsLog(store, 'curves-kill', 24);
    assert.deepEqual(
      refLog.rows.map((r) => r.step),
      Array.from({ length: 24 }, (_, i) => i + 1),
    );
    assert.equal(refLog.evals.length, 2);
    assert.deepEqual(deterministicLog(killLog), deterministicLog(refLog));
    assert.equal(killLog.gapBefore, null);

    const tb = tensorboardRead(root);
    const refTb = tb.scalars['curves-ref/tensorboard'];
    const killTb = tb.scalars['curves-kill/tensorboard'];
    for (const tag of [TAGS.loss, TAGS.accuracy, TAGS.learningRate, TAGS.testLoss, TAGS.testAccuracy]) {
      assert.ok(refTb[tag]?.length, tag);
      assert.deepEqual(killTb[tag], refTb[tag], tag);
    }
    assert.deepEqual(
      killTb[TAGS.loss].map(([s]) => s),
      Array.from({ length: 24 }, (_, i) => i + 1),
      'each step once',
    );
    assert.equal(
      killTb[TAGS.loss][23][1],
      Math.fround(refLog.rows[23].loss.sum),
      'TensorBoard reads the logged loss of step 24',
    );

    // A fork of the reference at its checkpoint of step 8 that changes nothing: its own log and TensorBoard run,
    // steps 9..24 with the reference's numbers.
    const at8 = fx.manifests('curves-ref').find((m: { step: number }) => m.step === 8);
    const override = writeSpec(cluster.dir, 'fork-override.json', {});
    const forked = cli(cluster, [
      'fork',
      '--from',
      `curves-ref:${at8.id}`,
      '--spec-override',
      override,
      '--run-id',
      'curves-fork',
      '--wait',
      '--json',
    ]);
    assert.equal(forked.code, 0, forked.stderr + worker.output());
    const forkLog = await readMetricsLog(store, 'curves-fork', 24);
    assert.equal(forkLog.startStep, 8);
    assert.deepEqual(deterministicLog(forkLog).rows, deterministicLog(refLog).rows.slice(8));
    assert.deepEqual(forkLog.evals, refLog.evals);
    const forkTb = tensorboardRead(root).scalars['curves-fork/tensorboard'];
    assert.deepEqual(forkTb[TAGS.loss], refTb[TAGS.loss].slice(8));

    // The report draws the recovered run from its log, the reference run over it.
    const html = path.join(cluster.dir, 'out', 'curves.html');
    const png = path.join(cluster.dir, 'out', 'curves.png');
    const rep = cli(cluster, [
      'report',
      'curves-kill',
      '--out',
      html,
      '--png',
      png,
      '--compare',
      'curves-ref',
      '--json',
    ]);
    assert.equal(rep.code, 0, rep.stderr);
    const summary = rep.json<{
      logPoints: number;
      compare: { runId: string; logPoints: number };
      recoveries: number;
    }>();
    assert.equal(summary.logPoints, 24);
    assert.deepEqual(summary.compare, { runId: 'curves-ref', logPoints: 24 });
    assert.ok(summary.recoveries >= 2);
    assert.match(fs.readFileSync(html, 'utf8'), /at every step from the run's metrics log \(24 points\)/);
    const img = decodePng(fs.readFileSync(png));
    assert.ok(countColor(img, '#1f77b4') > 500, `smoothed train curves: ${countColor(img, '#1f77b4')} blue pixels`);
    assert.ok(countColor(img, '#d62728') > 100, 'recovery marks');
    const self = cli(cluster, ['report', 'curves-kill', '--out', html, '--compare', 'curves-kill', '--force']);
    assert.equal(self.code, 2);
    assert.match(self.stderr, /--compare curves-kill is the run itself/);

    // A finished run with no worker left to ask: status shows its final train metrics (from its last checkpoint),
    // and every view counts epochs from 1.
    await worker.kill('SIGKILL');
    const status = cli(cluster, ['status', 'curves-ref', '--json']).json<Record<string, unknown>>();
    assert.equal(status.loss, refLog.rows[23].loss.sum);
    assert.equal(status.accuracy, refLog.rows[23].accuracy!.sum);
    assert.equal(status.learningRate, refLog.rows[23].learningRate.sum);
    assert.equal(status.epoch, 2);
    assert.match(status.trainMetricsFrom as string, /^checkpoint step-000000024-/);
    const text = cli(cluster, ['status', 'curves-ref']).stdout;
    assert.match(text, /step 24\/24 {2}epoch 2 {2}loss \d/);
    const list = cli(cluster, ['checkpoints', 'list', 'curves-ref']).stdout.trim().split('\n').slice(1);
    assert.deepEqual(
      list.map((row) => row.split(/\s+/).slice(1, 3)),
      [
        ['8', '1'],
        ['16', '2'],
        ['24', '2'],
      ],
    );
  });
});
