// The optimizers' update rules, slot names and refusals, in process on a two-weight model: each update checked against
// the rule computed by hand (float32 storage like the optimizer's own), so a changed constant, sign or slot shows.
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createOptimizer, type Optimizer, type ParamRef } from '../../training/optimizers';
import type { OptimizerSpec } from '../../spec/types';

const W0 = [0.3, -1.7, 2.9];
const B0 = [0.25];
// Gradients per step (not powers of two: float32 and float64 intermediates round differently).
const GRADS: Array<{ w: number[]; b: number[] }> = [
  { w: [0.1, -0.37, 1.3], b: [2] },
  { w: [-0.73, 0.11, 0.6], b: [-1] },
  { w: [0.21, 0.53, -2.3], b: [0.5] },
];

function makeParams(): ParamRef[] {
  return [
    { name: 'dense/kernel', shape: [3], variable: tf.variable(tf.tensor1d(W0), true) },
    { name: 'dense/bias', shape: [1], variable: tf.variable(tf.tensor1d(B0), true) },
  ];
}

function gradsAt(step: number): Map<string, tf.Tensor> {
  return new Map<string, tf.Tensor>([
    ['dense/kernel', tf.tensor1d(GRADS[step].w)],
    ['dense/bias', tf.tensor1d(GRADS[step].b)],
  ]);
}

function values(p: ParamRef): number[] {
  return Array.from(p.variable.dataSync());
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    assert.ok(diff <= tol * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} != ${expected[i]}`);
  }
}

/** Runs `steps` updates at `lr` and returns the optimizer and params (the caller disposes). */
function run(spec: OptimizerSpec, steps: number, numerics: 1 | 2 = 1): { opt: Optimizer; params: ParamRef[] } {
  const params = makeParams();
  const opt = createOptimizer(spec, params);
  opt.numerics = numerics;
  for (let s = 0; s < steps; s++) {
    const g = gradsAt(s);
    opt.apply(g, spec.learningRate);
    tf.dispose([...g.values()]);
  }
  return { opt, params };
}

function dispose(opt: Optimizer, params: ParamRef[]): void {
  opt.dispose();
  for (const p of params) p.variable.dispose();
}

/**
 * Adam by the paper with the bias correction folded into the step size. `float32Ops` (numerics 1) rounds every
 * operation to float32 as the backend's float32 tensors do, its constants too; otherwise (numerics 2) the
 * intermediates are doubles and only the stored moments and weights are float32.
 */
function adamReference(lr: number, b1: number, b2: number, eps: number, steps: number, float32Ops: boolean) {
  const f = float32Ops ? Math.fround : (x: number) => x;
  const w = Float32Array.from([...W0, ...B0]);
  const m = new Float32Array(w.length);
  const v = new Float32Array(w.length);
  const [B1, C1, B2, C2, E] = [b1, 1 - b1, b2, 1 - b2, eps].map(f);
  for (let s = 0; s < steps; s++) {
    const g = Float32Array.from([...GRADS[s].w, ...GRADS[s].b]);
    const t = s + 1;
    const step = f((lr * Math.sqrt(1 - Math.pow(b2, t))) / (1 - Math.pow(b1, t)));
    for (let j = 0; j < w.length; j++) {
      m[j] = f(f(B1 * m[j]) + f(C1 * g[j]));
      v[j] = f(f(B2 * v[j]) + f(C2 * f(g[j] * g[j])));
      w[j] = w[j] - f(f(step * m[j]) / f(f(Math.sqrt(v[j])) + E));
    }
  }
  return { w: Array.from(w), m: Array.from(m), v: Array.from(v) };
}

describe('training/optimizers', () => {
  it('sgd: w -= lr * g each step, no slots, counts its updates', () => {
    const { opt, params } = run({ name: 'sgd', learningRate: 0.5 }, 2);
    const expectW = W0.map((w, i) => w - 0.5 * GRADS[0].w[i] - 0.5 * GRADS[1].w[i]);
    assertClose(values(params[0]), expectW, 'kernel');
    assertClose(values(params[1]), [B0[0] - 0.5 * 2 - 0.5 * -1], 'bias');
    assert.equal(opt.iterations, 2);
    assert.equal(opt.name, 'sgd');
    assert.equal(opt.iterationsName, 'opt/sgd/iterations');
    assert.deepEqual(opt.slotEntries(), []);
    assert.deepEqual(opt.slotValues(), []);
    dispose(opt, params);
  });

  it('momentum: v = mu*v + g; w -= lr*v, with the velocity slot named by the weight (default mu 0.9)', () => {
    for (const mu of [0.5, undefined]) {
      const spec: OptimizerSpec = {
        name: 'momentum',
        learningRate: 0.1,
        ...(mu === undefined ? {} : { momentum: mu }),
      };
      const { opt, params } = run(spec, 2);
      const m = mu ?? 0.9;
      const v1 = GRADS[0].w;
      const v2 = v1.map((v, i) => m * v + GRADS[1].w[i]);
      const expectW = W0.map((w, i) => w - 0.1 * v1[i] - 0.1 * v2[i]);
      assertClose(values(params[0]), expectW, `kernel (mu ${m})`);
      const slots = opt.slotValues();
      assert.deepEqual(
        slots.map((s) => [s.name, s.shape]),
        [
          ['opt/momentum/velocity/dense/kernel', [3]],
          ['opt/momentum/velocity/dense/bias', [1]],
        ],
      );
      assertClose(slots[0].values, v2, 'velocity');
      assertClose(slots[1].values, [m * 2 + -1], 'bias velocity');
      assert.deepEqual(
        opt.slotEntries().map(([name]) => name),
        slots.map((s) => s.name),
      );
      assert.equal(opt.iterationsName, 'opt/momentum/iterations');
      dispose(opt, params);
    }
  });

  for (const numerics of [1, 2] as const) {
    it(`adam (numerics ${numerics}): three updates equal the bias-corrected rule, moments in slots m and v`, () => {
      const spec: OptimizerSpec = { name: 'adam', learningRate: 0.01, beta1: 0.8, beta2: 0.99, epsilon: 1e-3 };
      const { opt, params } = run(spec, 3, numerics);
      const ref = adamReference(0.01, 0.8, 0.99, 1e-3, 3, numerics === 1);
      // Bit for bit: the two numerics versions round the moments differently (the references differ).
      const other = adamReference(0.01, 0.8, 0.99, 1e-3, 3, numerics !== 1);
      assert.notDeepEqual([...other.m, ...other.v], [...ref.m, ...ref.v]);
      assert.deepEqual([...values(params[0]), ...values(params[1])], ref.w, 'weights');
      const slots = opt.slotValues();
      assert.deepEqual(
        slots.map((s) => [s.name, s.shape]),
        [
          ['opt/adam/m/dense/kernel', [3]],
          ['opt/adam/m/dense/bias', [1]],
          ['opt/adam/v/dense/kernel', [3]],
          ['opt/adam/v/dense/bias', [1]],
        ],
      );
      assert.deepEqual([...slots[0].values, ...slots[1].values], ref.m, 'm');
      assert.deepEqual([...slots[2].values, ...slots[3].values], ref.v, 'v');
      slots[0].shape.push(7); // the shapes handed out are copies
      assert.deepEqual(opt.slotValues()[0].shape, [3]);
      // The slot variables (what a checkpoint saves) hold the same moments.
      const entries = opt.slotEntries();
      assert.deepEqual(
        entries.map(([name]) => name),
        slots.map((s) => s.name),
      );
      assertClose([...entries[0][1].dataSync(), ...entries[1][1].dataSync()], ref.m, 'm variables');
      assertClose([...entries[2][1].dataSync(), ...entries[3][1].dataSync()], ref.v, 'v variables');
      assert.ok(
        entries.every(([, variable]) => !variable.trainable),
        'slots are not trainable',
      );
      // Numerics 2 keeps the moments on the host: the variables a snapshot was given keep their values while
      // training goes on (no array shared with the next update); under 1 they are the live slots.
      const g = gradsAt(0);
      opt.apply(g, 0.01);
      tf.dispose([...g.values()]);
      const after = [...entries[0][1].dataSync(), ...entries[1][1].dataSync()];
      if (numerics === 2) assert.deepEqual(after, ref.m, 'm variables after a step');
      else assert.notDeepEqual(after, ref.m, 'm variables after a step');
      assert.equal(opt.iterations, 4);
      assert.equal(opt.iterationsName, 'opt/adam/iterations');
      dispose(opt, params);
    });

    it(`adam (numerics ${numerics}): the defaults are beta1 0.9, beta2 0.999, epsilon 1e-7`, () => {
      const { opt, params } = run({ name: 'adam', learningRate: 0.01 }, 2, numerics);
      const ref = adamReference(0.01, 0.9, 0.999, 1e-7, 2, numerics === 1);
      assertClose([...values(params[0]), ...values(params[1])], ref.w, 'weights');
      dispose(opt, params);
    });

    it(`adam (numerics ${numerics}): a frozen weight and its moments stay as they are; a missing gradient is named`, () => {
      const params = makeParams();
      const opt = createOptimizer({ name: 'adam', learningRate: 0.01 }, params);
      opt.numerics = numerics;
      const g = gradsAt(0);
      opt.apply(g, 0.01, new Set(['dense/bias']));
      assert.deepEqual(values(params[1]), B0);
      assert.notDeepEqual(values(params[0]), W0);
      const slots = opt.slotValues();
      assert.deepEqual(Array.from(slots[1].values), [0], 'bias m untouched');
      assert.deepEqual(Array.from(slots[3].values), [0], 'bias v untouched');
      assert.notDeepEqual(Array.from(slots[0].values), [0, 0, 0]);
      assert.equal(opt.iterations, 1);
      g.delete('dense/bias');
      assert.throws(() => opt.apply(g, 0.01), /^Error: optimizer: no gradient for dense\/bias$/);
      tf.dispose([...g.values()]);
      dispose(opt, params);
      assert.throws(() => opt.apply(gradsAt(1), 0.01), /^Error: optimizer: disposed$/);
      opt.dispose(); // a second dispose is harmless
    });
  }

  it('sgd and momentum: a frozen weight stays, a missing gradient is named, a disposed optimizer refuses', () => {
    for (const spec of [
      { name: 'sgd', learningRate: 0.1 },
      { name: 'momentum', learningRate: 0.1 },
    ] satisfies OptimizerSpec[]) {
      const params = makeParams();
      const opt = createOptimizer(spec, params);
      const g = gradsAt(0);
      opt.apply(g, 0.1, new Set(['dense/kernel']));
      assert.deepEqual(values(params[0]), Array.from(Float32Array.from(W0)), spec.name);
      assertClose(values(params[1]), [B0[0] - 0.1 * 2], spec.name);
      g.delete('dense/kernel');
      assert.throws(() => opt.apply(g, 0.1), /^Error: optimizer: no gradient for dense\/kernel$/);
      tf.dispose([...g.values()]);
      dispose(opt, params);
      assert.throws(() => opt.apply(gradsAt(0), 0.1), /^Error: optimizer: disposed$/);
      assert.deepEqual(opt.slotEntries(), [], 'disposing drops the slots');
    }
  });

  it('adam numerics 1: a new learning rate at the next step takes effect (the cached step size is renewed)', () => {
    const params = makeParams();
    const opt = createOptimizer({ name: 'adam', learningRate: 0.01 }, params);
    const ref = makeParams();
    const refOpt = createOptimizer({ name: 'adam', learningRate: 0.01 }, ref);
    refOpt.numerics = 2;
    for (const [s, lr] of [0.01, 0.05, 0.05].entries()) {
      opt.apply(gradsAt(s), lr);
      refOpt.apply(gradsAt(s), lr);
    }
    assertClose(values(params[0]), values(ref[0]), 'kernel');
    dispose(opt, params);
    dispose(refOpt, ref);
  });

  it('refuses a bad learning rate, hyperparameters outside [lo, hi) and unknown names, naming the field', () => {
    const bad: Array<[OptimizerSpec, RegExp]> = [
      [{ name: 'sgd', learningRate: 0 }, /^optimizer\.learningRate must be a positive number, got 0$/],
      [{ name: 'sgd', learningRate: -1 }, /learningRate must be a positive number, got -1$/],
      [{ name: 'sgd', learningRate: Infinity }, /learningRate must be a positive number, got Infinity$/],
      [{ name: 'sgd', learningRate: NaN }, /learningRate must be a positive number, got NaN$/],
      [{ name: 'sgd', learningRate: '0.1' as unknown as number }, /learningRate must be a positive number, got 0.1$/],
      [{ name: 'momentum', learningRate: 0.1, momentum: 1 }, /^optimizer\.momentum must be in \[0, 1\), got 1$/],
      [{ name: 'momentum', learningRate: 0.1, momentum: -0.1 }, /^optimizer\.momentum must be in \[0, 1\), got -0.1$/],
      [{ name: 'adam', learningRate: 0.1, beta1: 1 }, /^optimizer\.beta1 must be in \[0, 1\), got 1$/],
      [{ name: 'adam', learningRate: 0.1, beta2: 1 }, /^optimizer\.beta2 must be in \[0, 1\), got 1$/],
      [{ name: 'adam', learningRate: 0.1, epsilon: 0 }, /^optimizer\.epsilon must be in \[5e-324, 1\), got 0$/],
      [{ name: 'adam', learningRate: 0.1, epsilon: 1 }, /^optimizer\.epsilon must be in \[5e-324, 1\), got 1$/],
      [
        { name: 'adam', learningRate: 0.1, beta1: '0.5' as unknown as number },
        /^optimizer\.beta1 must be in \[0, 1\), got 0.5$/,
      ],
      [
        { name: 'rmsprop' as unknown as 'sgd', learningRate: 0.1 },
        /^unknown optimizer "rmsprop" \(available: sgd, momentum, adam\)$/,
      ],
    ];
    for (const [spec, message] of bad) {
      assert.throws(
        () => createOptimizer(spec, []),
        (e: Error) => message.test(e.message),
        JSON.stringify(spec),
      );
    }
    // The edges that are allowed.
    for (const spec of [
      { name: 'momentum', learningRate: 0.1, momentum: 0 },
      { name: 'adam', learningRate: 0.1, beta1: 0, beta2: 0, epsilon: Number.MIN_VALUE },
    ] satisfies OptimizerSpec[]) {
      createOptimizer(spec, []).dispose();
    }
  });
});
