// The learning-rate schedules' defaults, edges, refusals and saved state, in process (the rules themselves are in
// training-prng.test.ts): each refusal names its field, each default is the one the spec documents.
import * as assert from 'node:assert/strict';
import type { ScheduleSpec } from '../../spec/types';
import { LrSchedule, type ScheduleState } from '../../training/schedules';

const refuses = (fn: () => unknown, message: string): void =>
  assert.throws(fn, (e: Error) => e.message === message, message);

describe('training/schedules: defaults, edges and refusals', () => {
  it('no schedule is the constant one; step decays by factor every `every` steps', () => {
    const c = LrSchedule.create(undefined, 0.3);
    assert.equal(c.learningRate(0, 10), 0.3);
    assert.equal(c.learningRate(1e6, 10), 0.3);
    assert.equal(c.getState(0, 10).name, 'constant');
    const s = LrSchedule.create({ name: 'step', every: 3, factor: 0.1 }, 1);
    assert.deepEqual(
      [0, 2, 3, 5, 6, 9].map((i) => s.learningRate(i, 100)),
      [1, 1, 0.1, 0.1, 0.1 ** 2, 0.1 ** 3],
    );
    // factor 1 and every 1 are allowed
    assert.equal(LrSchedule.create({ name: 'step', every: 1, factor: 1 }, 0.5).learningRate(7, 10), 0.5);
  });

  it('cosine: without warmup it starts at the base rate and ends at 0 by default; past the end it stays there', () => {
    const s = LrSchedule.create({ name: 'cosine' }, 2);
    assert.equal(s.learningRate(0, 100), 2);
    assert.ok(Math.abs(s.learningRate(50, 100) - 1) < 1e-12);
    assert.ok(Math.abs(s.learningRate(25, 100) - (1 + Math.cos(Math.PI / 4))) < 1e-12);
    assert.ok(Math.abs(s.learningRate(100, 100)) < 1e-12);
    assert.ok(Math.abs(s.learningRate(150, 100)) < 1e-12, 'clamped at the end');
    // A run no longer than its warmup: the decay is over one step.
    const w = LrSchedule.create({ name: 'cosine', warmupSteps: 2, minLearningRate: 0.5 }, 1);
    assert.deepEqual([w.learningRate(0, 2), w.learningRate(1, 2)], [0.5, 1]);
    assert.ok(Math.abs(w.learningRate(2, 2) - 1) < 1e-12);
    assert.ok(Math.abs(w.learningRate(3, 2) - 0.5) < 1e-12);
  });

  it('plateau on loss by default: patience 1, factor 0.5, floor 0; a null accuracy is ignored', () => {
    const s = LrSchedule.create({ name: 'plateau' }, 1);
    assert.equal(s.learningRate(0, 10), 1);
    s.onEpochEnd({ loss: 2, accuracy: null });
    s.onEpochEnd({ loss: 1.5, accuracy: null }); // improved (lower loss)
    assert.equal(s.learningRate(0, 10), 1);
    s.onEpochEnd({ loss: 1.5, accuracy: null }); // equal is no improvement: patience 1 reached
    assert.equal(s.learningRate(0, 10), 0.5);
    assert.equal(s.getState(0, 10).wait, 0);
    assert.equal(s.getState(0, 10).best, 1.5);
    s.onEpochEnd({ loss: 1.6, accuracy: null });
    assert.equal(s.learningRate(0, 10), 0.25);
    s.onEpochEnd({ loss: 1.4, accuracy: null }); // improved: no reduction, best moves
    assert.equal(s.learningRate(0, 10), 0.25);
    assert.equal(s.getState(0, 10).best, 1.4);

    const acc = LrSchedule.create({ name: 'plateau', metric: 'accuracy', patience: 3, factor: 0.5 }, 1);
    acc.onEpochEnd({ loss: 1, accuracy: null }); // regression has no accuracy: nothing happens
    assert.equal(acc.getState(0, 10).best, null);
    acc.onEpochEnd({ loss: 1, accuracy: 0.5 });
    for (let i = 0; i < 2; i++) acc.onEpochEnd({ loss: 0.1, accuracy: 0.4 }); // lower loss is no improvement here
    assert.equal(acc.getState(0, 10).wait, 2);
    assert.equal(acc.learningRate(0, 10), 1);
    acc.onEpochEnd({ loss: 0.1, accuracy: 0.4 });
    assert.equal(acc.learningRate(0, 10), 0.5);
    // An epoch without accuracy neither improves nor counts against patience.
    for (let i = 0; i < 4; i++) acc.onEpochEnd({ loss: 0.1, accuracy: null });
    assert.equal(acc.learningRate(0, 10), 0.5);
    assert.equal(acc.getState(0, 10).wait, 0);
  });

  it('plateau: the rate never goes below minLearningRate; other schedules ignore epoch ends', () => {
    const s = LrSchedule.create({ name: 'plateau', patience: 0, factor: 0.1, minLearningRate: 0.05 }, 1);
    s.onEpochEnd({ loss: 1, accuracy: null }); // first value is an improvement even with patience 0
    assert.equal(s.learningRate(0, 10), 1);
    s.onEpochEnd({ loss: 1, accuracy: null });
    assert.ok(Math.abs(s.learningRate(0, 10) - 0.1) < 1e-15);
    s.onEpochEnd({ loss: 1, accuracy: null });
    assert.equal(s.learningRate(0, 10), 0.05);
    const st = LrSchedule.create({ name: 'step', every: 1, factor: 0.5 }, 1);
    const before = st.getState(0, 10);
    st.onEpochEnd({ loss: 1, accuracy: 0.5 });
    st.onEpochEnd({ loss: 2, accuracy: 0.1 });
    assert.deepEqual(st.getState(0, 10), before);
  });

  it('setLearningRate: a new base rate from now on, recorded; the same rate is a no-op; plateau resets to it', () => {
    const s = LrSchedule.create({ name: 'step', every: 10, factor: 0.5 }, 0.1);
    s.setLearningRate(0.1, 5);
    assert.deepEqual(s.getState(0, 10).overrides, []);
    s.setLearningRate(0.4, 12);
    assert.equal(s.learningRate(12, 100), 0.2);
    const state = s.getState(12, 100);
    assert.deepEqual(state, {
      name: 'step',
      baseLearningRate: 0.4,
      learningRate: 0.2,
      best: null,
      wait: 0,
      plateauLearningRate: null,
      overrides: [{ step: 12, learningRate: 0.4 }],
    } satisfies ScheduleState);
    state.overrides.push({ step: 1, learningRate: 1 });
    assert.equal(s.getState(0, 1).overrides.length, 1, 'getState is a copy');

    const p = LrSchedule.create({ name: 'plateau', patience: 0 }, 1);
    p.onEpochEnd({ loss: 1, accuracy: null });
    p.onEpochEnd({ loss: 1, accuracy: null });
    assert.equal(p.learningRate(0, 1), 0.5);
    p.setLearningRate(1, 3); // the base is unchanged but the plateau rate is not: not a no-op
    assert.equal(p.learningRate(0, 1), 1);
    assert.deepEqual(p.getState(0, 1).overrides, [{ step: 3, learningRate: 1 }]);
    p.setLearningRate(1, 4);
    assert.equal(p.getState(0, 1).overrides.length, 1);
    refuses(() => p.setLearningRate(0, 5), 'learning rate must be a positive number, got 0');
    refuses(() => p.setLearningRate(Infinity, 5), 'learning rate must be a positive number, got Infinity');
  });

  it('fromState continues where the state left off and refuses states that do not fit the spec', () => {
    const spec: ScheduleSpec = { name: 'plateau', patience: 2 };
    const s = LrSchedule.create(spec, 1);
    s.onEpochEnd({ loss: 1, accuracy: null });
    s.onEpochEnd({ loss: 2, accuracy: null });
    const saved = s.getState(0, 10);
    const r = LrSchedule.fromState(spec, saved);
    saved.wait = 99; // the restored schedule holds its own copy
    r.onEpochEnd({ loss: 2, accuracy: null });
    assert.equal(r.learningRate(0, 10), 0.5);

    const good = LrSchedule.create(undefined, 0.1).getState(0, 1);
    assert.equal(LrSchedule.fromState(undefined, good).learningRate(0, 1), 0.1);
    refuses(() => LrSchedule.fromState(undefined, null), 'schedule state: missing');
    refuses(() => LrSchedule.fromState(undefined, 'x'), 'schedule state: missing');
    refuses(
      () => LrSchedule.fromState({ name: 'cosine' }, good),
      'schedule state is for "constant", the spec says cosine',
    );
    refuses(
      () => LrSchedule.fromState(undefined, { ...good, baseLearningRate: -1 }),
      'schedule state baseLearningRate must be a positive number, got -1',
    );
    refuses(() => LrSchedule.fromState(undefined, { ...good, wait: 0.5 }), 'schedule state: malformed');
    refuses(() => LrSchedule.fromState(undefined, { ...good, overrides: {} }), 'schedule state: malformed');
    const plateau = LrSchedule.create({ name: 'plateau' }, 1).getState(0, 1);
    refuses(
      () => LrSchedule.fromState({ name: 'plateau' }, { ...plateau, plateauLearningRate: null }),
      'schedule state plateauLearningRate must be a positive number, got null',
    );
  });

  it('refuses bad schedule settings, naming the field and what is allowed', () => {
    const bad: Array<[unknown, string]> = [
      [{ name: 'step', every: 0, factor: 0.5 }, 'schedule.every must be an integer >= 1, got 0'],
      [{ name: 'step', every: 1.5, factor: 0.5 }, 'schedule.every must be an integer >= 1, got 1.5'],
      [{ name: 'step', every: 1, factor: 0 }, 'schedule.factor must be in (0, 1], got 0'],
      [{ name: 'step', every: 1, factor: 1.01 }, 'schedule.factor must be in (0, 1], got 1.01'],
      [{ name: 'cosine', warmupSteps: -1 }, 'schedule.warmupSteps must be an integer >= 0'],
      [{ name: 'cosine', warmupSteps: 0.5 }, 'schedule.warmupSteps must be an integer >= 0'],
      [{ name: 'cosine', minLearningRate: -0.1 }, 'schedule.minLearningRate must be >= 0'],
      [{ name: 'plateau', metric: 'auc' }, 'schedule.metric must be loss or accuracy'],
      [{ name: 'plateau', patience: -1 }, 'schedule.patience must be an integer >= 0'],
      [{ name: 'plateau', patience: 1.5 }, 'schedule.patience must be an integer >= 0'],
      [{ name: 'plateau', factor: 0 }, 'schedule.factor must be in (0, 1], got 0'],
      [{ name: 'plateau', factor: 2 }, 'schedule.factor must be in (0, 1], got 2'],
      [{ name: 'plateau', minLearningRate: -1 }, 'schedule.minLearningRate must be >= 0'],
      [{ name: 'linear' }, 'unknown schedule "linear" (constant, step, cosine, plateau)'],
    ];
    for (const [spec, message] of bad) refuses(() => LrSchedule.create(spec as ScheduleSpec, 0.1), message);
    refuses(() => LrSchedule.create(undefined, 0), 'optimizer.learningRate must be a positive number, got 0');
    refuses(() => LrSchedule.create(undefined, NaN), 'optimizer.learningRate must be a positive number, got NaN');
    refuses(
      () => LrSchedule.create(undefined, '1' as unknown as number),
      'optimizer.learningRate must be a positive number, got 1',
    );
    // The edges that are allowed.
    LrSchedule.create({ name: 'cosine', warmupSteps: 0, minLearningRate: 0 }, 1);
    LrSchedule.create({ name: 'plateau', patience: 0, factor: 1, minLearningRate: 0 }, 1);
  });
});
