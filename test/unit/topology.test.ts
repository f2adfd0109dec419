// A change of the replica count at resume or fork (training/topology.ts), in process: the rule that shares out the
// epoch under way (every example of it trained exactly once), where epochs start and how many steps the run has
// afterwards, the refusals, and real trainers that train across 2 -> 3 -> 1 replicas, each example recorded from the
// batches they actually train.
import * as assert from 'node:assert/strict';
import { stepsPerEpochProblem } from '../../activities/chunk/resume-guards';
import { replicaSnapshot } from '../../activities/replica';
import type { Manifest } from '../../checkpoint';
import { roundSteps } from '../../spec/helpers';
import { validateSpec } from '../../spec/validate';
import type { RunSpec } from '../../spec/types';
import { Trainer } from '../../training';
import { Prng } from '../../training/prng';
import { replicaSlotName } from '../../training/replicas';
import {
  batchBounds,
  changeTopology,
  layoutAfter,
  planOf,
  recordedReplicas,
  sliceRanges,
  TopologyError,
  type Range,
  type Topology,
} from '../../training/topology';

interface St {
  step: number;
  epoch: number;
  batchInEpoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  distributed?: { replicas: number };
  topology?: Topology;
}
const state = (o: { step: number; epoch: number; batchInEpoch: number; replicas: number; spe: number }): St => ({
  step: o.step,
  epoch: o.epoch,
  batchInEpoch: o.batchInEpoch,
  stepsPerEpoch: o.spe,
  totalSteps: 3 * o.spe,
  ...(o.replicas > 1 ? { distributed: { replicas: o.replicas } } : {}),
});

/** Every position of the plan's batches [from, to), in order, checking each batch holds 1..batchSize positions. */
function positionsOf(plan: ReturnType<typeof planOf>, from = 0, to = plan.steps): number[] {
  const out: number[] = [];
  for (let k = from; k < to; k++) {
    const [lo, hi] = batchBounds(plan, k);
    assert.ok(hi - lo >= 1 && hi - lo <= plan.batchSize, `batch ${k} has ${hi - lo} positions`);
    for (const [s, e] of sliceRanges(plan.ranges, lo, hi)) for (let i = s; i < e; i++) out.push(i);
  }
  return out;
}

describe('training/topology: sharing out the epoch under way', () => {
  it('a change at an epoch start has no transition: epochs of the new count start there', () => {
    const st = changeTopology(state({ step: 16, epoch: 2, batchInEpoch: 0, replicas: 2, spe: 8 }), 3, 400, 25, 3);
    assert.deepEqual(st.topology, {
      replicas: 3,
      anchorStep: 16,
      anchorEpoch: 2,
      transition: null,
      changes: [{ step: 16, epoch: 2, from: 2, to: 3 }],
    });
    // floor(400 / 3) = 133 examples per shard: 6 steps of 25; one epoch left.
    assert.equal(st.stepsPerEpoch, 6);
    assert.equal(st.totalSteps, 22);
    assert.equal('distributed' in st, false);
    assert.equal(recordedReplicas(st), 3);
  });

  it('mid-epoch, the positions no replica trained yet are split over the new replicas in equal steps', () => {
    // 2 replicas of 200, 3 batches of 25 trained by each: [75, 200) and [275, 400) are left, 250 positions.
    const st = changeTopology(state({ step: 11, epoch: 1, batchInEpoch: 3, replicas: 2, spe: 8 }), 3, 400, 25, 3);
    const ranges: Range[] = [
      [75, 200],
      [275, 400],
    ];
    // ceil(250 / 3) = 84 positions at most per replica: ceil(84 / 25) = 4 steps.
    assert.deepEqual(st.topology?.transition, { epoch: 1, startStep: 11, ranges, steps: 4 });
    assert.equal(st.topology?.anchorStep, 15);
    assert.equal(st.topology?.anchorEpoch, 2);
    assert.equal(st.batchInEpoch, 0);
    assert.equal(st.totalSteps, 15 + 6);
    const plans = [0, 1, 2].map((r) => planOf(st.topology, 1, 400, 3, r, 25));
    assert.deepEqual(
      plans.map((p) => p.rows),
      [83, 83, 84],
    );
    assert.deepEqual(plans[1].ranges, [
      [158, 200],
      [275, 316],
    ]);
    assert.deepEqual(
      plans.flatMap((p) => positionsOf(p)).sort((a, b) => a - b),
      [...Array.from({ length: 125 }, (_, i) => 75 + i), ...Array.from({ length: 125 }, (_, i) => 275 + i)],
    );
    // The next epoch is an ordinary one of 3 replicas.
    assert.deepEqual(planOf(st.topology, 2, 400, 3, 2, 25).ranges, [[266, 399]]);
  });

  it('property: any chain of changes trains every position of the epoch exactly once (batches of 1..batchSize)', () => {
    const rng = Prng.fromSeed(7);
    const pick = (lo: number, hi: number) => lo + Math.floor(rng.nextFloat() * (hi - lo + 1));
    let checked = 0;
    for (let trial = 0; trial < 300; trial++) {
      const n = pick(20, 300);
      const B = pick(1, 16);
      let replicas = pick(1, 4);
      let spe = Math.ceil(Math.floor(n / replicas) / B);
      let st = state({
        step: spe,
        epoch: 1,
        batchInEpoch: 0,
        replicas,
        spe,
      });
      const trained: number[] = [];
      let refused = false;
      for (let change = 0; change < 3 && !refused; change++) {
        // Train some batches of the current layout, then change the count.
        const plans = Array.from({ length: replicas }, (_, r) => planOf(st.topology, 1, n, replicas, r, B));
        const b = pick(st.batchInEpoch, plans[0].steps - 1);
        for (const p of plans) trained.push(...positionsOf(p, st.batchInEpoch, b));
        const moved = { ...st, step: st.step + (b - st.batchInEpoch), batchInEpoch: b };
        let to = pick(1, 5);
        if (to === replicas) to = replicas + 1;
        try {
          st = changeTopology(moved, to, n, B, 3);
        } catch (err) {
          assert.ok(err instanceof TopologyError, String(err));
          assert.match(err.message, /cannot be shared by \d+ replicas|no training example per shard/);
          refused = true;
          break;
        }
        replicas = to;
        spe = st.stepsPerEpoch;
      }
      if (refused) continue;
      for (let r = 0; r < replicas; r++) trained.push(...positionsOf(planOf(st.topology, 1, n, replicas, r, B)));
      trained.sort((a, b) => a - b);
      // A change at an epoch's start makes it an ordinary epoch of the new count, which leaves out the order's last
      // n mod replicas positions like every such epoch; a transition trains every position left.
      const ordinary = st.topology?.transition?.epoch !== 1;
      const expected = ordinary ? Math.floor(n / replicas) * replicas : n;
      assert.deepEqual(
        trained,
        Array.from({ length: expected }, (_, i) => i),
        `n ${n}, B ${B}`,
      );
      checked++;
    }
    assert.ok(checked > 200, `only ${checked} chains could be checked`);
  });

  it('refuses a change the positions left cannot carry, saying what to do', () => {
    // 2 positions left for 3 replicas.
    assert.throws(
      () => changeTopology(state({ step: 9, epoch: 0, batchInEpoch: 9, replicas: 1, spe: 10 }), 3, 20, 2, 1),
      (err: unknown) =>
        err instanceof TopologyError &&
        err.message ===
          'the 2 example(s) left in epoch 1 at step 9 cannot be shared by 3 replicas (each needs an example per step); ' +
            "resume with fewer replicas, or from a checkpoint at an epoch's start",
    );
  });

  it('a spec whose epochs end before the epoch of the change has nothing left to train', () => {
    const st = changeTopology(state({ step: 34, epoch: 1, batchInEpoch: 10, replicas: 2, spe: 24 }), 3, 1200, 25, 1);
    assert.equal(st.totalSteps, 34);
    assert.equal(
      layoutAfter(state({ step: 34, epoch: 1, batchInEpoch: 10, replicas: 2, spe: 24 }), 3, 1200, 25, 1).totalSteps,
      34,
    );
    // Two epochs: the one under way is finished over its transition.
    assert.equal(
      changeTopology(state({ step: 34, epoch: 1, batchInEpoch: 10, replicas: 2, spe: 24 }), 3, 1200, 25, 2).totalSteps,
      44,
    );
  });

  it('the workflow rounds: the transition ends at the anchor, later epochs every stepsPerEpoch from it', () => {
    assert.deepEqual(layoutAfter(state({ step: 11, epoch: 1, batchInEpoch: 3, replicas: 2, spe: 8 }), 3, 400, 25, 3), {
      stepsPerEpoch: 6,
      totalSteps: 21,
      epochAnchor: 15,
    });
    assert.equal(roundSteps(11, 6, 21, 5, 15), 4);
    assert.equal(roundSteps(15, 6, 21, 5, 15), 5);
    assert.equal(roundSteps(20, 6, 21, 5, 15), 1);
    assert.equal(roundSteps(12, 6, 24, 5), 5);
    // Unchanged count: the layout of a spec without changes.
    assert.deepEqual(layoutAfter(state({ step: 11, epoch: 1, batchInEpoch: 3, replicas: 2, spe: 8 }), 2, 400, 25, 3), {
      stepsPerEpoch: 8,
      totalSteps: 24,
      epochAnchor: 0,
    });
  });
});

describe('resume guards: another replica count', () => {
  const spec = (replicas: number, allow?: boolean): RunSpec =>
    validateSpec({
      model: 'mnist-mlp',
      dataset: { name: 'mnist', trainLimit: 400, testLimit: 50, validationFraction: 0 },
      epochs: 3,
      batchSize: 25,
      optimizer: { name: 'sgd', learningRate: 0.1 },
      checkpoint: { storage: 'file://x' },
      ...(replicas > 1 ? { distributed: { replicas, syncEverySteps: 2 } } : {}),
      ...(allow ? { resume: { allowTopologyChange: true } } : {}),
    });
  const manifest = (st: object) => ({ id: 'ckpt-7', state: st }) as unknown as Manifest;
  const two = manifest(state({ step: 11, epoch: 1, batchInEpoch: 3, replicas: 2, spe: 8 }));

  it('without resume.allowTopologyChange: refused, naming both counts and the flag', () => {
    for (const rows of [400, null]) {
      const why = stepsPerEpochProblem(two, spec(3), rows);
      assert.match(why ?? '', /^checkpoint ckpt-7: the checkpoint was trained by 2 replicas, the spec has 3 replicas/);
      assert.match(why ?? '', /set resume\.allowTopologyChange to continue with 3/);
    }
    assert.match(stepsPerEpochProblem(two, spec(1), 400) ?? '', /trained by 2 replicas, the spec has 1 replica \(/);
  });

  it('with it: allowed when the epoch can be shared out; a changed batch size is still refused', () => {
    assert.equal(stepsPerEpochProblem(two, spec(3, true), 400), null);
    assert.equal(stepsPerEpochProblem(two, spec(1, true), 400), null);
    assert.equal(stepsPerEpochProblem(two, spec(2), 400), null);
    assert.match(stepsPerEpochProblem(two, { ...spec(3, true), batchSize: 20 }, 400) ?? '', /batchSize cannot change/);
    const late = manifest(state({ step: 15, epoch: 1, batchInEpoch: 7, replicas: 2, spe: 8 }));
    // One batch of 25 left per replica (50 positions): 5 replicas share it in one step of 10 each.
    assert.equal(stepsPerEpochProblem(late, spec(5, true), 400), null);
  });
});

describe('topology change on real trainers: 2 -> 3 -> 1 replicas, every example of each epoch once', function () {
  this.timeout(120_000);
  const n = 200;
  const spec = (replicas: number): RunSpec =>
    validateSpec({
      model: 'mnist-mlp',
      dataset: { name: 'mnist', trainLimit: n, testLimit: 50, validationFraction: 0 },
      epochs: 3,
      batchSize: 16,
      seed: 3,
      optimizer: { name: 'adam', learningRate: 0.003 },
      checkpoint: { storage: 'file://x' },
      resume: { allowTopologyChange: true },
      ...(replicas > 1 ? { distributed: { replicas, syncEverySteps: 2 } } : {}),
    });

  /** Trains each trainer `steps` steps (or to its epoch's end), recording the examples each step trains. */
  async function stepAll(trainers: Trainer[], seen: number[], steps = Infinity): Promise<void> {
    for (const t of trainers) {
      const epoch = t.position.epoch;
      for (let k = 0; k < steps && !t.epochEndPending && t.position.epoch === epoch && !t.done; k++) {
        const batch = t.nextBatchExamples();
        assert.ok(batch.length > 0 && batch.length <= 16);
        seen.push(...batch);
        await t.train({ maxSteps: 1 });
      }
    }
  }
  const sorted = (xs: number[]) => xs.slice().sort((a, b) => a - b);
  const all = (k: number) => Array.from({ length: k }, (_, i) => i);

  it('trains the rest of each epoch exactly once across the changes, and the run goes on at the new count', async () => {
    const trainers: Trainer[] = [];
    try {
      const two = [0, 1].map(async (r) => Trainer.create(spec(2), { replica: r, deferEpochEnd: true }));
      const old = await Promise.all(two);
      trainers.push(...old);
      const seen: number[] = [];
      await stepAll(old, seen, 3);
      const snap = old[0].snapshot();
      // As a round checkpoint records it: the count it was trained with.
      const three = await Promise.all(
        [0, 1, 2].map((r) => Trainer.fromSnapshot(spec(3), snap, { replica: r, deferEpochEnd: true, topologyFrom: 2 })),
      );
      trainers.push(...three);
      const st = three[0].state;
      assert.equal(st.step, 3);
      assert.deepEqual(st.topology?.changes, [{ step: 3, epoch: 0, from: 2, to: 3 }]);
      await stepAll(three, seen);
      // 2 x 3 batches of 16 before, the rest after: the epoch's 200 examples once each.
      assert.deepEqual(sorted(seen), all(n));
      assert.deepEqual(
        three.map((t) => t.state.step),
        [st.topology!.anchorStep, st.topology!.anchorStep, st.topology!.anchorStep],
      );

      // The epoch end (as the round's sync does it), then the next epoch in the 3-replica layout; then down to 1.
      await three[0].completeEpoch();
      const next = three[0].snapshot();
      assert.equal(next.state.epoch, 1);
      assert.equal(next.state.totalSteps, st.topology!.anchorStep + 2 * 5);
      const again = await Promise.all(
        [0, 1, 2].map((r) => Trainer.fromSnapshot(spec(3), next, { replica: r, deferEpochEnd: true, topologyFrom: 3 })),
      );
      trainers.push(...again);
      const seen2: number[] = [];
      await stepAll(again, seen2, 2);
      const one = await Trainer.fromSnapshot(spec(1), again[0].snapshot(), { topologyFrom: 3 });
      trainers.push(one);
      assert.deepEqual(
        one.state.topology?.changes.map((c) => [c.from, c.to]),
        [
          [2, 3],
          [3, 1],
        ],
      );
      await stepAll([one], seen2);
      // floor(200 / 3) = 66 per replica in the 3-replica epoch; the 2 positions it leaves out are trained after the
      // change to 1, with the rest.
      assert.deepEqual(sorted(seen2), all(n));
      const res = await one.train({ maxSteps: 1000 });
      assert.equal(res.done, true);
      assert.equal(one.state.step, one.state.totalSteps);
    } finally {
      for (const t of trainers) t.dispose();
    }
  });

  it('without the flag a trainer refuses the snapshot of another count, naming both', async () => {
    const t = await Trainer.create(spec(2), { replica: 0, deferEpochEnd: true });
    try {
      const snap = t.snapshot();
      const strict = { ...spec(3), resume: {} };
      await assert.rejects(
        Trainer.fromSnapshot(strict, snap, { replica: 0, topologyFrom: 2 }),
        /trained by 2 replicas, the spec has 3 replicas/,
      );
    } finally {
      t.dispose();
    }
  });

  it('a distributed run that ended, resumed with more epochs: every replica trains the same next order', async () => {
    // The run's last checkpoint: 1 epoch of 2 replicas, trained to its end (no order drawn for a next epoch).
    const short = { ...spec(2), epochs: 1 };
    const t = await Trainer.create(short, { replica: 0, deferEpochEnd: true });
    try {
      await t.train({ maxSteps: 1000 });
      await t.completeEpoch();
      const snap = t.snapshot();
      assert.equal(snap.state.step, snap.state.totalSteps);
      const blobs = new Map(snap.tensors.map((x) => [x.name, x.data]));
      for (const x of snap.tensors)
        if (x.name.startsWith('opt/')) blobs.set(replicaSlotName(1, x.name), x.data.slice());
      const m = {
        id: 'ckpt-end',
        step: snap.state.step,
        blobs: [...blobs.keys()].map((name) => {
          const x = snap.tensors.find((y) => name.endsWith(y.name))!;
          return { name, dtype: x.dtype, shape: x.shape };
        }),
        state: { ...snap.state, distributed: { replicas: 2, replicaRngs: [null, Prng.fromSeed(9).getState()] } },
      } as unknown as Manifest;
      const longer = spec(2); // 3 epochs
      const replicas = await Promise.all(
        [0, 1].map((r) => {
          const { snap: s, topologyFrom, orderDrawn } = replicaSnapshot(m, blobs, r, longer);
          return Trainer.fromSnapshot(longer, s, { replica: r, deferEpochEnd: true, topologyFrom, orderDrawn });
        }),
      );
      try {
        // The order a single run continuing the same checkpoint draws: the run stream's next permutation.
        const order = Prng.fromState(snap.state.rng).permutation(n);
        const seen: number[] = [];
        await stepAll(replicas, seen);
        // Replica 0 trains the first half of that order, replica 1 the second: the epoch once.
        assert.deepEqual(
          seen.slice(0, 100).sort((a, b) => a - b),
          sorted(Array.from(order.subarray(0, 100))),
        );
        assert.deepEqual(sorted(seen), all(n));
      } finally {
        for (const x of replicas) x.dispose();
      }
    } finally {
      t.dispose();
    }
  });

  it("a joining replica starts from the mean of the old replicas' slots and a stream of its own", () => {
    const f = (xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);
    const slot = 'opt/adam/m/model/dense/kernel';
    const blobs = new Map<string, Uint8Array>([
      ['model/dense/kernel', f([1, 2])],
      [slot, f([1, 3])],
      [replicaSlotName(1, slot), f([3, 5])],
    ]);
    const entry = (name: string) => ({ name, dtype: 'float32', shape: [2] });
    const m = {
      id: 'ckpt-1',
      step: 4,
      blobs: [...blobs.keys()].map(entry),
      state: { step: 4, rng: Prng.fromSeed(1).getState(), distributed: { replicas: 2, replicaRngs: [null, null] } },
    } as unknown as Manifest;
    const { snap, topologyFrom } = replicaSnapshot(m, blobs, 2, spec(3));
    assert.equal(topologyFrom, 2);
    const byName = new Map(snap.tensors.map((t) => [t.name, Array.from(new Float32Array(t.data.slice().buffer))]));
    assert.deepEqual(byName.get(slot), [2, 4]);
    assert.deepEqual(byName.get('model/dense/kernel'), [1, 2]);
    assert.equal(snap.tensors.length, 2);
    assert.notDeepEqual(snap.state.rng, Prng.fromSeed(1).getState());
    // Without the flag: refused before anything is built.
    assert.throws(() => replicaSnapshot(m, blobs, 2, { ...spec(3), resume: {} }), /trained by 2 replicas/);
  });
});
