// Replicas in training processes: on a worker (here with two slots), each replica of a distributed run trains in a
// training process by default. One SIGKILLed mid-round is replaced by the worker at
// once, without Temporal's heartbeat timeout, in a spare that holds the round's checkpoint in memory; the replica runs
// again from there, the other replica's result is kept, and the run ends with the weights of the uninterrupted run.
// The worker itself never dies. The reference run keeps its replicas in the worker (DURABLE_TRAIN_REPLICA_PROCESS=0):
// where a replica trains changes no bit.
import * as assert from 'node:assert/strict';
import type { RunResult } from '../../workflows/progress';
import { progressQuery } from '../../workflows/definitions';
import { cli, waitFor, writeSpec } from '../helpers/cluster';
import { smallSpec, useCluster } from '../helpers/fixtures';

// 400 examples, 2 replicas: shards of 200 = 8 steps of 25 per epoch, 2 epochs, rounds of 4 steps: 4 rounds.
const spec = smallSpec({
  dataset: { name: 'mnist', trainLimit: 400, testLimit: 100, validationFraction: 0 },
  batchSize: 25,
  dropout: 0.2,
  distributed: { replicas: 2, syncEverySteps: 4 },
});

describe('replicas in training processes (real dev server, worker processes)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  const TWO_SLOTS = { DURABLE_TRAIN_SLOTS: '2' };

  const run = async (runId: string): Promise<RunResult> => {
    const file = writeSpec(fx.cluster.dir, `${runId}.json`, spec);
    const r = cli(fx.cluster, ['start', '--spec', file, '--run-id', runId, '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.status, 'completed');
    return result;
  };

  it('a replica whose training process is SIGKILLed mid-round runs again at once; the weights are the uninterrupted ones', async function () {
    const ref = await fx.worker({ env: { ...TWO_SLOTS, DURABLE_TRAIN_REPLICA_PROCESS: '0' } });
    const want = await run('dist-ref');
    await ref.kill('SIGTERM');
    // Its training processes were there (the supervisor said so), and no replica went to one.
    assert.match(ref.output(), /training process \d+ started/);
    assert.doesNotMatch(ref.output(), /runs the replica/, 'with =0 the replicas train in the worker');

    // Replica 1's training process kills itself at step 6, in the second round's first attempt.
    const w = await fx.worker({ env: { ...TWO_SLOTS, DURABLE_TRAIN_FAILPOINT: 'kill-replica:dist-killed:1:6' } });
    const got = await run('dist-killed');
    assert.equal(got.weightsSha256, want.weightsSha256, w.output());
    assert.equal(got.step, want.step);
    // (The worker's lines reach the test a moment after the run's result.)
    await waitFor('replicas in training processes by default', async () =>
      /training process \d+ runs the replica 0 of run dist-killed/.test(w.output()),
    ).catch(() => assert.fail(w.output()));
    await waitFor("the worker saying the replica's process died", async () =>
      /training process of the replica 1 of run dist-killed died: killed by SIGKILL/.test(w.output()),
    ).catch(() => assert.fail(w.output()));
    // The restart ran in a spare that held the round's checkpoint in memory, checked against its manifest.
    await waitFor('the restart restoring from memory', async () =>
      /replica 1 of run dist-killed restores the round's checkpoint step-\S+ from memory \(\d+ blobs checked/.test(
        w.output(),
      ),
    ).catch(() => assert.fail(w.output()));
    const again = /the replica 1 of run dist-killed trains again (\d+) ms after its training process died/.exec(
      w.output(),
    );
    assert.ok(again, w.output());
    assert.equal(w.proc.exitCode, null, 'the worker itself survives');
    // The restart ran as the replica's next attempt: it is the round's one retried replica, the other's result kept.
    const progress = await fx.cluster.client.workflow.getHandle('dist-killed').query(progressQuery);
    const retried = progress.recoveries.filter((r) => /retried/.test(r.reason));
    assert.equal(retried.length, 1, JSON.stringify(progress.recoveries));
    assert.match(retried[0].reason, /round 1: replica\(s\) 1 \(attempt 2\) retried; the others' results kept/);
  });
});
