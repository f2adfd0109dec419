import * as assert from 'assert';
import { Prng } from '../../training/prng';
import { LrSchedule } from '../../training/schedules';
import { randomShift } from '../../training/augment';

// The published sfc32 (PractRand), as commonly written in JS; ours must produce the same stream.
function referenceSfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
}

describe('training/prng', () => {
  it('matches the reference sfc32 stream for a given state', () => {
    const state = [1, 2, 3, 0xffffffff];
    const ref = referenceSfc32(state[0], state[1], state[2], state[3]);
    const rng = Prng.fromState({ algorithm: 'sfc32', state });
    for (let i = 0; i < 10000; i++) assert.strictEqual(rng.nextUint32(), ref(), `output ${i}`);
  });

  it('fillMask draws exactly as nextFloat() >= rate per element, and leaves the same state', () => {
    for (const seed of [0, 1, 7, 0xffffffff]) {
      for (const rate of [0, 0.25, 0.5, 0.999, 2 ** -32]) {
        const a = Prng.fromSeed(seed);
        const b = a.clone();
        const n = 20011;
        const scale = 1 / (1 - rate);
        const expected = new Float32Array(n);
        for (let i = 0; i < n; i++) expected[i] = a.nextFloat() >= rate ? scale : 0;
        const got = new Float32Array(n);
        b.fillMask(got, rate, scale);
        assert.deepStrictEqual(got, expected, `seed ${seed}, rate ${rate}`);
        assert.deepStrictEqual(b.getState(), a.getState(), `state after, seed ${seed}, rate ${rate}`);
        assert.strictEqual(b.nextUint32(), a.nextUint32());
      }
    }
  });

  it('pins the seeding (changing it would break resuming old checkpoints)', () => {
    const r = Prng.fromSeed(0);
    assert.deepStrictEqual(r.getState(), { algorithm: 'sfc32', state: [99621017, 2830175463, 1368817051, 1275600331] });
    assert.deepStrictEqual([r.nextUint32(), r.nextUint32()], [4205396811, 3543653536]);
  });

  it('continues the identical sequence after a state round trip through JSON', () => {
    const a = Prng.fromSeed(1234);
    for (let i = 0; i < 37; i++) a.nextFloat();
    a.normal();
    const b = Prng.fromState(JSON.parse(JSON.stringify(a.getState())));
    for (let i = 0; i < 1000; i++) {
      assert.strictEqual(b.nextUint32(), a.nextUint32());
      assert.strictEqual(b.nextFloat(), a.nextFloat());
      assert.strictEqual(b.nextInt(7), a.nextInt(7));
      assert.strictEqual(b.normal(), a.normal());
    }
  });

  it('gives different streams for different seeds, and seed 0 works', () => {
    const seqs = [0, 1, 2, 0xffffffff].map((s) => {
      const r = Prng.fromSeed(s);
      return Array.from({ length: 8 }, () => r.nextUint32()).join(',');
    });
    assert.strictEqual(new Set(seqs).size, seqs.length);
    const r0 = Prng.fromSeed(0);
    let sum = 0;
    const n = 100000;
    for (let i = 0; i < n; i++) {
      const f = r0.nextFloat();
      assert.ok(f >= 0 && f < 1);
      sum += f;
    }
    assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
  });

  it('rejects bad seeds and states', () => {
    assert.throws(() => Prng.fromSeed(-1), /seed/);
    assert.throws(() => Prng.fromSeed(1.5), /seed/);
    assert.throws(() => Prng.fromState({ algorithm: 'xorshift', state: [1, 2, 3, 4] }), /algorithm/);
    assert.throws(() => Prng.fromState({ algorithm: 'sfc32', state: [1, 2, 3] }), /4 uint32/);
  });

  it('draws unbiased integers, normals and permutations', () => {
    const r = Prng.fromSeed(9);
    const counts = new Array(5).fill(0);
    for (let i = 0; i < 50000; i++) counts[r.nextInt(5)]++;
    for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `counts ${counts}`);
    let s = 0;
    let s2 = 0;
    const n = 50000;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      s += z;
      s2 += z * z;
    }
    assert.ok(Math.abs(s / n) < 0.03 && Math.abs(s2 / n - 1) < 0.05, `mean ${s / n} var ${s2 / n}`);
    const p = r.permutation(1000);
    assert.deepStrictEqual(
      Array.from(p).sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.notDeepStrictEqual(
      Array.from(p.subarray(0, 20)),
      Array.from({ length: 20 }, (_, i) => i),
    );
  });
});

describe('training/prng: edges and refusals', () => {
  const refuses = (fn: () => unknown, message: string): void =>
    assert.throws(fn, (e: Error) => e.message === message, message);

  it('seeds: [0, 2^32) integers only', () => {
    assert.strictEqual(Prng.fromSeed(2 ** 32 - 1).getState().algorithm, 'sfc32');
    refuses(() => Prng.fromSeed(2 ** 32), 'PRNG seed must be an integer in [0, 2^32), got 4294967296');
    refuses(() => Prng.fromSeed(-1), 'PRNG seed must be an integer in [0, 2^32), got -1');
    refuses(() => Prng.fromSeed(NaN), 'PRNG seed must be an integer in [0, 2^32), got NaN');
  });

  it('states: four uint32 words of sfc32, each refusal naming what it got', () => {
    for (const state of [
      [0, 0, 0, 0],
      [2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1],
    ]) {
      assert.deepStrictEqual(Prng.fromState({ algorithm: 'sfc32', state }).getState().state, state);
    }
    refuses(() => Prng.fromState(null as never), 'PRNG state: expected algorithm sfc32, got undefined');
    refuses(
      () => Prng.fromState({ algorithm: 'xorshift', state: [1, 2, 3, 4] }),
      'PRNG state: expected algorithm sfc32, got "xorshift"',
    );
    for (const state of [[1, 2, 3, 2 ** 32], [1, 2, -1, 4], [1, 2.5, 3, 4], [1, 2, 3], [1, 2, 3, 4, 5], 'abcd']) {
      refuses(
        () => Prng.fromState({ algorithm: 'sfc32', state: state as number[] }),
        `PRNG state: expected 4 uint32 words, got ${JSON.stringify(state)}`,
      );
    }
  });

  it('fillMask keeps an element whose draw equals rate * 2^32 exactly (>=, as nextFloat() >= rate)', () => {
    const a = Prng.fromSeed(3);
    const u = a.clone().nextUint32();
    const out = new Float32Array(1);
    a.fillMask(out, u / 2 ** 32, 2);
    assert.deepStrictEqual(Array.from(out), [2]);
  });

  it('nextInt: rejection sampling against the draws it is built on, and its refusals', () => {
    // n = 3 * 2^30: a quarter of the 32-bit draws lie above the largest multiple of n and are drawn again.
    const n = 3 * 2 ** 30;
    const r = Prng.fromSeed(11);
    const ref = r.clone();
    let rejected = 0;
    for (let i = 0; i < 200; i++) {
      let u = ref.nextUint32();
      while (u >= n) {
        rejected++;
        u = ref.nextUint32();
      }
      assert.strictEqual(r.nextInt(n), u, `draw ${i}`);
    }
    assert.ok(rejected > 0, 'the seed exercises the rejection');
    // A draw equal to the limit itself is drawn again (a state whose next draw is exactly 3 * 2^30).
    const edge = Prng.fromState({ algorithm: 'sfc32', state: [n, 0, 0, 0] });
    const after = Prng.fromState({ algorithm: 'sfc32', state: [n, 0, 0, 0] });
    assert.strictEqual(after.nextUint32(), n);
    assert.strictEqual(edge.nextInt(n), after.nextUint32() % n);
    assert.deepStrictEqual(r.getState(), ref.getState());
    // The whole range: n = 2^32 returns the raw draw, n = 1 always 0.
    const w = Prng.fromSeed(5);
    assert.strictEqual(w.nextInt(2 ** 32), Prng.fromSeed(5).nextUint32());
    assert.strictEqual(w.nextInt(1), 0);
    for (const bad of [0, -3, 1.5, 2 ** 32 + 1, NaN]) {
      refuses(() => w.nextInt(bad), `nextInt: n must be an integer in [1, 2^32], got ${bad}`);
    }
  });

  it('normal(mean, std) is mean + std * the Box-Muller value of two uniforms', () => {
    const r = Prng.fromSeed(21);
    const ref = r.clone();
    for (let i = 0; i < 20; i++) {
      const u1 = 1 - ref.nextFloat();
      const u2 = ref.nextFloat();
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      assert.strictEqual(r.normal(5, 2), 5 + 2 * z);
    }
  });

  it('permutation is Fisher-Yates from the last index down to 1, one draw per swap', () => {
    const r = Prng.fromSeed(8);
    const ref = r.clone();
    const p = r.permutation(50);
    const q = Array.from({ length: 50 }, (_, i) => i);
    for (let i = 49; i > 0; i--) {
      const j = ref.nextInt(i + 1);
      [q[i], q[j]] = [q[j], q[i]];
    }
    assert.deepStrictEqual(Array.from(p), q);
    assert.deepStrictEqual(r.getState(), ref.getState(), 'no extra draw');
    assert.deepStrictEqual(Array.from(Prng.fromSeed(1).permutation(1)), [0]);
  });
});

describe('training/schedules', () => {
  it('constant and step', () => {
    const c = LrSchedule.create({ name: 'constant' }, 0.1);
    assert.strictEqual(c.learningRate(0, 100), 0.1);
    assert.strictEqual(c.learningRate(99, 100), 0.1);
    const s = LrSchedule.create({ name: 'step', every: 10, factor: 0.5 }, 0.1);
    assert.strictEqual(s.learningRate(9, 100), 0.1);
    assert.strictEqual(s.learningRate(10, 100), 0.05);
    assert.strictEqual(s.learningRate(25, 100), 0.025);
  });

  it('cosine warms up linearly, then decays to the minimum', () => {
    const s = LrSchedule.create({ name: 'cosine', warmupSteps: 4, minLearningRate: 0.01 }, 1);
    assert.deepStrictEqual(
      [0, 1, 2, 3].map((i) => s.learningRate(i, 104)),
      [0.25, 0.5, 0.75, 1],
    );
    assert.strictEqual(s.learningRate(4, 104), 1);
    assert.ok(Math.abs(s.learningRate(54, 104) - 0.505) < 1e-12);
    assert.ok(Math.abs(s.learningRate(104, 104) - 0.01) < 1e-12);
    const prev = [10, 30, 50, 70, 90].map((i) => s.learningRate(i, 104));
    for (let i = 1; i < prev.length; i++) assert.ok(prev[i] < prev[i - 1]);
  });

  it('plateau reduces after `patience` epochs without improvement and survives a state round trip', () => {
    const spec = {
      name: 'plateau' as const,
      metric: 'accuracy' as const,
      patience: 2,
      factor: 0.5,
      minLearningRate: 0.02,
    };
    const s = LrSchedule.create(spec, 0.1);
    s.onEpochEnd({ loss: 1, accuracy: 0.5 });
    s.onEpochEnd({ loss: 1, accuracy: 0.6 });
    s.onEpochEnd({ loss: 1, accuracy: 0.6 }); // wait 1
    assert.strictEqual(s.learningRate(0, 10), 0.1);
    const restored = LrSchedule.fromState(spec, JSON.parse(JSON.stringify(s.getState(0, 10))));
    for (const x of [s, restored]) {
      x.onEpochEnd({ loss: 1, accuracy: 0.55 }); // wait 2 -> reduce
      assert.strictEqual(x.learningRate(0, 10), 0.05);
      x.onEpochEnd({ loss: 1, accuracy: 0.5 });
      x.onEpochEnd({ loss: 1, accuracy: 0.5 });
      assert.strictEqual(x.learningRate(0, 10), 0.025);
      x.onEpochEnd({ loss: 1, accuracy: 0.5 });
      x.onEpochEnd({ loss: 1, accuracy: 0.5 });
      assert.strictEqual(x.learningRate(0, 10), 0.02); // floored at minLearningRate
    }
    assert.throws(() => LrSchedule.fromState({ name: 'constant' }, s.getState(0, 10)), /plateau/);
  });

  it('setLearningRate overrides the base rate and is recorded in the state', () => {
    const s = LrSchedule.create({ name: 'step', every: 10, factor: 0.5 }, 0.1);
    s.setLearningRate(0.4, 12);
    assert.strictEqual(s.learningRate(12, 100), 0.2);
    const st = s.getState(12, 100) as { overrides: unknown[]; learningRate: number };
    s.setLearningRate(0.4, 15); // unchanged: not recorded again (a retried chunk may repeat it)
    assert.deepStrictEqual(st.overrides, [{ step: 12, learningRate: 0.4 }]);
    assert.deepStrictEqual((s.getState(15, 100) as { overrides: unknown[] }).overrides, st.overrides);
    assert.strictEqual(st.learningRate, 0.2);
    const p = LrSchedule.create({ name: 'plateau' }, 0.1);
    p.setLearningRate(0.3, 5);
    assert.strictEqual(p.learningRate(5, 100), 0.3);
    assert.throws(() => s.setLearningRate(-1, 0), /positive/);
  });
});

describe('training/augment', () => {
  it('shifts with zero fill, two draws per image, deterministic', () => {
    const img = new Float32Array(2 * 784);
    img[14 * 28 + 14] = 1; // image 0: one pixel in the middle
    img[784] = 1; // image 1: top-left corner
    const a = img.slice();
    const b = img.slice();
    const r1 = Prng.fromSeed(3);
    const r2 = Prng.fromSeed(3);
    randomShift(a, 2, 2, r1);
    randomShift(b, 2, 2, r2);
    assert.deepStrictEqual(a, b);
    assert.deepStrictEqual(r1.getState(), r2.getState());
    // Exactly two integer draws per image: count them, and the state equals that of four nextInt(5) draws.
    const counted = Prng.fromSeed(3);
    const nextInt = counted.nextInt.bind(counted);
    const draws: number[] = [];
    counted.nextInt = (n: number) => (draws.push(n), nextInt(n));
    randomShift(img.slice(), 2, 2, counted);
    assert.deepStrictEqual(draws, [5, 5, 5, 5]);
    const probe = Prng.fromSeed(3);
    const [dx, dy, dx1, dy1] = [probe.nextInt(5) - 2, probe.nextInt(5) - 2, probe.nextInt(5) - 2, probe.nextInt(5) - 2];
    assert.deepStrictEqual(r1.getState(), probe.getState());
    assert.strictEqual(a[(14 + dy) * 28 + 14 + dx], 1);
    // Image 1 moved by the second pair of draws: its corner pixel lands at (dy1, dx1), or left the image.
    if (dx1 >= 0 && dy1 >= 0) assert.strictEqual(a[784 + dy1 * 28 + dx1], 1);
    else
      assert.strictEqual(
        a.subarray(784).reduce((s, v) => s + v, 0),
        0,
      );
    assert.strictEqual(
      a.subarray(0, 784).reduce((s, v) => s + v, 0),
      1,
    );
    // every pixel is shifted or zero: sums never grow
    assert.ok(a.subarray(784).reduce((s, v) => s + v, 0) <= 1);
  });
});
