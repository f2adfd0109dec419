// What a fork may change and how: the fields that differ between two specs, the refusal naming the first field a fork
// cannot change (and why), what starts fresh (optimizer slots, schedule state, the base rate), and how an override is
// merged over the source's spec. Pure and in process; the fork command and the fork activity call these.
import * as assert from 'node:assert/strict';
import { mergeForkSpec, planFork, specDifferences } from '../../spec/fork';
import { SpecError, validateSpec, type RunSpec } from '../../spec';

const source = validateSpec({
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 100 },
  epochs: 2,
  batchSize: 10,
  seed: 7,
  optimizer: { name: 'adam', learningRate: 0.01, beta1: 0.8 },
  schedule: { name: 'step', every: 5, factor: 0.5 },
  checkpoint: { storage: 'file://.data/a', keepLatest: 3 },
  freeze: ['dense1'],
});
/** The source with `override` merged in and validated, as `fork` builds the fork's spec. */
const forkOf = (override: unknown): RunSpec => validateSpec(mergeForkSpec(source, override));

function refusal(fork: RunSpec): SpecError {
  try {
    planFork(source, fork);
  } catch (err) {
    assert.ok(err instanceof SpecError, String(err));
    return err;
  }
  assert.fail('expected the fork to be refused');
}

describe('spec fork: differences between two specs', () => {
  it('none between a spec and itself', () => {
    assert.deepEqual(specDifferences(source, source), []);
    assert.deepEqual(specDifferences(source, structuredClone(source)), []);
  });

  it('the dotted path of every leaf that differs, is added or removed, sorted; a list is one leaf', () => {
    const fork = forkOf({ epochs: 3, checkpoint: { keepLatest: 4, keepEverySteps: 10 }, freeze: ['dense2'] });
    assert.deepEqual(specDifferences(source, fork), [
      'checkpoint.keepEverySteps',
      'checkpoint.keepLatest',
      'epochs',
      'freeze',
    ]);
    assert.deepEqual(specDifferences(fork, source), [
      'checkpoint.keepEverySteps',
      'checkpoint.keepLatest',
      'epochs',
      'freeze',
    ]);
    assert.deepEqual(
      specDifferences(
        { a: { b: [1, 2] }, c: undefined } as unknown as RunSpec,
        { a: { b: [1, 2] } } as unknown as RunSpec,
      ),
      [],
    );
    assert.deepEqual(specDifferences({ a: { b: 1 } } as unknown as RunSpec, { a: { b: '1' } } as unknown as RunSpec), [
      'a.b',
    ]);
  });
});

describe('spec fork: what a fork may not change', () => {
  const cases: Array<[unknown, string, string]> = [
    [{ model: 'mnist-cnn' }, 'model', 'the checkpoint holds the weights of the source model'],
    [{ dataset: { trainLimit: 90 } }, 'dataset.trainLimit', 'the checkpoint holds a position in the source data'],
    [
      { batchSize: 20 },
      'batchSize',
      'the checkpoint holds a position in the data counted in batches of the source size',
    ],
    [
      { seed: 8 },
      'seed',
      'the random state continues from the checkpoint; the seed is used only at the start of a run',
    ],
    [
      { checkpoint: { storage: 'file://.data/b' } },
      'checkpoint.storage',
      'the source checkpoint is read from, and the fork writes to, the same storage',
    ],
  ];
  for (const [override, field, why] of cases) {
    it(`refuses a change of ${field}, saying why`, () => {
      const err = refusal(forkOf(override));
      assert.equal(err.field, field);
      assert.equal(err.message, `invalid spec: ${field}: cannot change in a fork: ${why} (start a new run instead)`);
    });
  }

  it('names the first such field in sorted order', () => {
    assert.equal(refusal(forkOf({ seed: 8, batchSize: 20, epochs: 3 })).field, 'batchSize');
  });

  it('a field only starting with a fixed name is not fixed', () => {
    const plan = planFork(source, { ...source, seedling: 1, modelName: 'x' } as unknown as RunSpec);
    assert.deepEqual(plan.changed, ['modelName', 'seedling']);
  });
});

describe('spec fork: what starts fresh', () => {
  it('nothing when only retention and epochs change', () => {
    assert.deepEqual(planFork(source, forkOf({ epochs: 4, checkpoint: { keepLatest: 9 } })), {
      changed: ['checkpoint.keepLatest', 'epochs'],
      freshOptimizer: false,
      freshSchedule: false,
      learningRate: null,
    });
  });

  it('the base rate from the fork point when the rate changes', () => {
    const plan = planFork(source, forkOf({ optimizer: { learningRate: 0.02 } }));
    assert.deepEqual(plan, {
      changed: ['optimizer.learningRate'],
      freshOptimizer: false,
      freshSchedule: false,
      learningRate: 0.02,
    });
  });

  it('the optimizer slots with another optimizer, the schedule state with another schedule', () => {
    const plan = planFork(source, forkOf({ optimizer: { name: 'sgd' }, schedule: { name: 'cosine' } }));
    assert.equal(plan.freshOptimizer, true);
    assert.equal(plan.freshSchedule, true);
    assert.equal(plan.learningRate, null);
    // a spec built by code without a schedule runs the constant one
    const noSchedule = { ...source, schedule: undefined } as RunSpec;
    const constant = { ...source, schedule: { name: 'constant' } } as RunSpec;
    assert.equal(planFork(noSchedule, constant).freshSchedule, false);
    assert.equal(planFork(constant, noSchedule).freshSchedule, false);
    assert.equal(planFork(noSchedule, source).freshSchedule, true);
  });
});

describe('spec fork: merging the override', () => {
  it('merges blocks field by field when their name stays', () => {
    const merged = mergeForkSpec(source, { optimizer: { learningRate: 0.5 }, schedule: { every: 9 } }) as RunSpec;
    assert.deepEqual(merged.optimizer, { ...source.optimizer, learningRate: 0.5 });
    assert.deepEqual(merged.schedule, { name: 'step', every: 9, factor: 0.5 });
    assert.deepEqual(mergeForkSpec(source, { optimizer: { name: 'adam', beta2: 0.9 } }), {
      ...source,
      optimizer: { ...source.optimizer, beta2: 0.9 },
    });
  });

  it('replaces an optimizer or schedule block whose name changes; a new optimizer keeps the rate unless given', () => {
    const merged = mergeForkSpec(source, { optimizer: { name: 'momentum' }, schedule: { name: 'cosine' } }) as RunSpec;
    assert.deepEqual(merged.optimizer, { name: 'momentum', learningRate: 0.01 });
    assert.deepEqual(merged.schedule, { name: 'cosine' });
    const withRate = mergeForkSpec(source, { optimizer: { name: 'sgd', learningRate: 0.3 } }) as RunSpec;
    assert.deepEqual(withRate.optimizer, { name: 'sgd', learningRate: 0.3 });
  });

  it('a schedule given to a source without one is taken whole', () => {
    const bare = { ...source, schedule: undefined } as unknown as RunSpec;
    const merged = mergeForkSpec(bare, { schedule: { name: 'cosine', warmupSteps: 2 } }) as RunSpec;
    assert.deepEqual(merged.schedule, { name: 'cosine', warmupSteps: 2 });
  });

  it('no override, or one without blocks, leaves the source as it was', () => {
    assert.deepEqual(mergeForkSpec(source, undefined), source);
    assert.deepEqual(mergeForkSpec(source, {}), source);
    assert.deepEqual(mergeForkSpec(source, { epochs: 5 }), { ...source, epochs: 5 });
    assert.deepEqual((mergeForkSpec(source, { optimizer: null }) as RunSpec).optimizer, null);
    assert.equal((mergeForkSpec(source, { optimizer: 'sgd' }) as RunSpec).optimizer, 'sgd');
    assert.deepEqual((mergeForkSpec(source, { schedule: { name: 5 } }) as RunSpec).schedule, { name: 5 });
  });
});
