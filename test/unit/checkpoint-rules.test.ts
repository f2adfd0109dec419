// The checkpoint layer's pure rules, in process and without a store: which checkpoints a retention policy keeps and
// why (and how few it verifies to decide), the policy's checks and their messages, and the manifest codec's
// refusals (each names the field and what is wrong), its canonical JSON, ids and stored form.
import * as assert from 'node:assert/strict';
import type { RetentionPolicy } from '../../checkpoint';
import {
  hasAnyRule,
  newestFirst,
  selectRetained,
  validatePolicy,
  type RetentionCandidate,
} from '../../checkpoint/retention';

const cand = (id: string, step: number, metrics: Record<string, number> = {}, createdAt = `t${step}`) => ({
  id,
  step,
  createdAt,
  metrics,
});

/** selectRetained's answer as a plain object, and the ids it asked about, in order. */
async function retained(
  candidates: RetentionCandidate[],
  policy: RetentionPolicy,
  damaged: string[] = [],
): Promise<{ keep: Record<string, string[]>; asked: string[] }> {
  const asked: string[] = [];
  const keep = await selectRetained(candidates, policy, async (id) => {
    asked.push(id);
    return !damaged.includes(id);
  });
  return { keep: Object.fromEntries(keep), asked };
}

describe('checkpoint rules: retention', function () {
  it('newestFirst orders by step, then createdAt, then id, all descending, and gives the step difference', function () {
    assert.equal(newestFirst(cand('a', 3), cand('b', 7)), 4);
    assert.equal(newestFirst(cand('a', 7), cand('b', 3)), -4);
    assert.equal(newestFirst(cand('a', 5, {}, '2026-01-02'), cand('b', 5, {}, '2026-01-01')), -1);
    assert.equal(newestFirst(cand('a', 5, {}, '2026-01-01'), cand('b', 5, {}, '2026-01-02')), 1);
    assert.equal(newestFirst(cand('a', 5, {}, 'same'), cand('b', 5, {}, 'same')), 1);
    assert.equal(newestFirst(cand('b', 5, {}, 'same'), cand('a', 5, {}, 'same')), -1);
    assert.equal(newestFirst(cand('a', 5, {}, 'same'), cand('a', 5, {}, 'same')), 0);
    const sorted = [
      cand('x', 2, {}, 'b'),
      cand('y', 9, {}, 'a'),
      cand('a', 2, {}, 'b'),
      cand('z', 2, {}, 'c'),
      cand('q', 1, {}, 'z'),
    ].sort(newestFirst);
    assert.deepEqual(
      sorted.map((c) => c.id),
      ['y', 'z', 'x', 'a', 'q'],
    );
  });

  it('validatePolicy accepts the empty policy, zeros and both modes', function () {
    for (const p of [
      {},
      { keepLatest: 0 },
      { keepLatest: 3, keepEverySteps: 0 },
      { keepEverySteps: 100 },
      { keepBest: { k: 0, metric: 'loss', mode: 'min' } },
      { keepBest: { k: 2, metric: 'accuracy', mode: 'max' } },
    ] as RetentionPolicy[])
      assert.doesNotThrow(() => validatePolicy(p), JSON.stringify(p));
  });

  it('validatePolicy refuses each bad field with a message naming it and the value', function () {
    const refuses = (policy: unknown, message: string) =>
      assert.throws(
        () => validatePolicy(policy as RetentionPolicy),
        (err: Error) => err.message === message,
        `${JSON.stringify(policy)} -> ${message}`,
      );
    refuses({ keepLatest: -1 }, 'retention keepLatest must be a non-negative integer, got -1');
    refuses({ keepLatest: 1.5 }, 'retention keepLatest must be a non-negative integer, got 1.5');
    refuses({ keepLatest: '3' }, 'retention keepLatest must be a non-negative integer, got "3"');
    refuses({ keepLatest: 2 ** 53 }, 'retention keepLatest must be a non-negative integer, got 9007199254740992');
    refuses({ keepLatest: null }, 'retention keepLatest must be a non-negative integer, got null');
    refuses({ keepEverySteps: -5 }, 'retention keepEverySteps must be a non-negative integer, got -5');
    refuses({ keepEverySteps: 2.5 }, 'retention keepEverySteps must be a non-negative integer, got 2.5');
    refuses({ keepEverySteps: '10' }, 'retention keepEverySteps must be a non-negative integer, got "10"');
    refuses(
      { keepBest: { k: -1, metric: 'loss', mode: 'min' } },
      'retention keepBest.k must be a non-negative integer, got -1',
    );
    refuses(
      { keepBest: { k: '2', metric: 'loss', mode: 'min' } },
      'retention keepBest.k must be a non-negative integer, got "2"',
    );
    refuses({ keepBest: { k: 1, metric: '', mode: 'min' } }, 'retention keepBest.metric must be a metric name');
    refuses({ keepBest: { k: 1, metric: 7, mode: 'min' } }, 'retention keepBest.metric must be a metric name');
    refuses({ keepBest: { k: 1, metric: 'loss', mode: 'avg' } }, "retention keepBest.mode must be 'max' or 'min'");
    refuses({ keepBest: { k: 1, metric: 'loss' } }, "retention keepBest.mode must be 'max' or 'min'");
  });

  it('hasAnyRule: keepLatest or keepBest set, or a non-zero keepEverySteps', function () {
    assert.equal(hasAnyRule({}), false);
    assert.equal(hasAnyRule({ keepEverySteps: 0 }), false);
    assert.equal(hasAnyRule({ keepLatest: 0 }), true);
    assert.equal(hasAnyRule({ keepBest: { k: 0, metric: 'loss', mode: 'min' } }), true);
    assert.equal(hasAnyRule({ keepEverySteps: 10 }), true);
  });

  it('no rule: only the newest valid checkpoint is kept, and only as many are verified as it takes to find it', async function () {
    const cs = [cand('s10', 10), cand('s30', 30), cand('s20', 20)];
    assert.deepEqual(await retained(cs, {}), { keep: { s30: ['newest-valid'] }, asked: ['s30'] });
    assert.deepEqual(await retained(cs, {}, ['s30']), { keep: { s20: ['newest-valid'] }, asked: ['s30', 's20'] });
    assert.deepEqual(await retained(cs, {}, ['s30', 's20', 's10']), { keep: {}, asked: ['s30', 's20', 's10'] });
    assert.deepEqual(await retained([], { keepLatest: 2, keepEverySteps: 10 }), { keep: {}, asked: [] });
  });

  it('keepLatest keeps the newest N that verify, skipping damaged ones, and stops asking once they are found', async function () {
    const cs = [10, 20, 30, 40, 50].map((s) => cand(`s${s}`, s));
    assert.deepEqual(await retained(cs, { keepLatest: 2 }), {
      keep: { s50: ['latest', 'newest-valid'], s40: ['latest'] },
      asked: ['s50', 's40'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 2 }, ['s50', 's30']), {
      keep: { s40: ['latest', 'newest-valid'], s20: ['latest'] },
      asked: ['s50', 's40', 's30', 's20'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 0 }, ['s50']), {
      keep: { s40: ['newest-valid'] },
      asked: ['s50', 's40'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 9 }, ['s10']), {
      keep: { s50: ['latest', 'newest-valid'], s40: ['latest'], s30: ['latest'], s20: ['latest'] },
      asked: ['s50', 's40', 's30', 's20', 's10'],
    });
  });

  it('keepBest keeps the K best by the metric (max or min), only finite scores, skipping damaged ones', async function () {
    const cs = [
      cand('s1', 1, { acc: 0.5, loss: 3 }),
      cand('s2', 2, { acc: 0.9, loss: 1 }),
      cand('s3', 3, { acc: 0.7, loss: 2 }),
      cand('s4', 4, { acc: NaN, loss: Infinity }),
      cand('s5', 5, { loss: -Infinity }),
      cand('s6', 6, { acc: 0.1, loss: 5 }),
    ];
    assert.deepEqual(await retained(cs, { keepLatest: 0, keepBest: { k: 2, metric: 'acc', mode: 'max' } }), {
      keep: { s6: ['newest-valid'], s2: ['best-acc'], s3: ['best-acc'] },
      asked: ['s6', 's2', 's3'],
    });
    assert.deepEqual(await retained(cs, { keepBest: { k: 2, metric: 'loss', mode: 'min' } }, ['s2']), {
      keep: { s6: ['newest-valid'], s3: ['best-loss'], s1: ['best-loss'] },
      asked: ['s6', 's2', 's3', 's1'],
    });
    assert.deepEqual(await retained(cs, { keepBest: { k: 0, metric: 'loss', mode: 'min' } }), {
      keep: { s6: ['newest-valid'] },
      asked: ['s6'],
    });
    // More slots than finite scores: every finite one is kept, the non-finite and missing never.
    assert.deepEqual(await retained(cs, { keepBest: { k: 10, metric: 'acc', mode: 'min' } }), {
      keep: { s6: ['newest-valid', 'best-acc'], s1: ['best-acc'], s3: ['best-acc'], s2: ['best-acc'] },
      asked: ['s6', 's6', 's1', 's3', 's2'],
    });
  });

  it('keepBest on a tie keeps the older checkpoint, whatever the order they are listed in', async function () {
    const a = cand('old', 10, { loss: 1 });
    const b = cand('new', 20, { loss: 1 });
    const c = cand('worse', 30, { loss: 2 });
    for (const mode of ['min', 'max'] as const) {
      const policy: RetentionPolicy = { keepLatest: 0, keepBest: { k: 1, metric: 'loss', mode } };
      const best = mode === 'min' ? 'old' : 'worse';
      for (const cs of [
        [a, b, c],
        [c, b, a],
      ]) {
        const { keep } = await retained(cs, policy);
        assert.deepEqual(keep[best], mode === 'min' ? ['best-loss'] : ['newest-valid', 'best-loss'], mode);
        assert.equal(keep.new, undefined, mode);
      }
    }
  });

  it('keepEverySteps keeps each step that is a multiple, damaged or not (the manager verifies them on load)', async function () {
    const cs = [0, 5, 10, 15, 20, 25].map((s) => cand(`s${s}`, s));
    assert.deepEqual(await retained(cs, { keepEverySteps: 10 }, ['s20']), {
      keep: { s25: ['newest-valid'], s0: ['every-10'], s10: ['every-10'], s20: ['every-10'] },
      asked: ['s25'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 1, keepEverySteps: 0 }), {
      keep: { s25: ['latest', 'newest-valid'] },
      asked: ['s25'],
    });
    assert.deepEqual(await retained(cs, { keepLatest: 1, keepEverySteps: 25 }), {
      keep: { s25: ['latest', 'newest-valid', 'every-25'], s0: ['every-25'] },
      asked: ['s25'],
    });
  });
});
