// The metrics log's refusals, stored form and chain reading at their edges, in process over an in-memory store (the
// fs and S3 stores are exercised by metrics-log.test.ts): each refusal names the key or field, each edge is pinned.
import * as assert from 'node:assert/strict';
import {
  bucketOf,
  decodeSegment,
  dropSegmentsAfter,
  encodeSegment,
  evalKey,
  mean,
  mergeSegments,
  MetricsSegmentWriter,
  openRow,
  readChain,
  readSegment,
  segmentKey,
  segmentSteps,
  seriesOf,
  writeSegment,
  type MetricsSegment,
  type MetricsStore,
} from '../../telemetry/metrics-log';

class MemStore implements MetricsStore {
  readonly data = new Map<string, Uint8Array>();
  async read(key: string): Promise<Uint8Array> {
    const v = this.data.get(key);
    if (!v) throw Object.assign(new Error(`no ${key}`), { name: 'CheckpointNotFoundError' });
    return v;
  }
  async writeAtomic(key: string, data: Uint8Array): Promise<void> {
    this.data.set(key, data);
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.data.keys()].filter((k) => k.startsWith(prefix));
  }
  async delete(key: string): Promise<void> {
    this.data.delete(key);
  }
}

const m = (step: number, loss: number, extra: Partial<{ accuracy: number | null; reg: number }> = {}) => ({
  step,
  loss,
  accuracy: extra.accuracy === undefined ? 0.5 : extra.accuracy,
  learningRate: 0.1,
  samplesPerSec: 123.456,
  ...(extra.reg === undefined ? {} : { regularizationLoss: extra.reg }),
});

const enc = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));

describe('telemetry/metrics-log: edges and refusals', () => {
  it('bucketOf: raw steps up to the budget, then doubling buckets; refuses bad steps and budgets', () => {
    assert.deepEqual(bucketOf(4, 4), { first: 4, last: 4 });
    assert.deepEqual(bucketOf(5, 4), { first: 5, last: 6 });
    assert.deepEqual(bucketOf(8, 4), { first: 7, last: 8 });
    assert.deepEqual(bucketOf(9, 4), { first: 9, last: 12 });
    assert.deepEqual(bucketOf(16, 4), { first: 13, last: 16 });
    assert.deepEqual(bucketOf(17, 4), { first: 17, last: 24 });
    assert.deepEqual(bucketOf(1), { first: 1, last: 1 });
    assert.deepEqual(bucketOf(4096), { first: 4096, last: 4096 });
    assert.deepEqual(bucketOf(4097), { first: 4097, last: 4098 });
    assert.deepEqual(bucketOf(3, 2), { first: 3, last: 4 });
    for (const step of [0, -1, 1.5, NaN]) {
      assert.throws(() => bucketOf(step, 4), { message: `metrics log: step must be an integer >= 1, got ${step}` });
    }
    for (const raw of [0, 3, 1, 2.5, -2]) {
      assert.throws(() => bucketOf(5, raw), {
        message: `metrics log: rawSteps must be an even integer >= 2, got ${raw}`,
      });
    }
  });

  it('a writer rounds samples/s to one decimal, keeps min/max/sum, and drops a null accuracy or a missing regularization term in a bucket', () => {
    const w = new MetricsSegmentWriter('r', 0, { rawSteps: 2, continues: false });
    assert.equal(w.start, 0);
    w.record(m(1, 1, { accuracy: null }));
    w.record(m(3, 2, { reg: 0.5 }));
    w.record(m(4, 4, { reg: 0.25 }));
    w.record(m(5, 3, { accuracy: null }));
    w.record(m(6, 1, { accuracy: 0.75 }));
    const seg = w.cut(6, 100);
    assert.deepEqual(seg.rows[0], {
      step: 1,
      first: 1,
      count: 1,
      loss: { sum: 1, min: 1, max: 1 },
      accuracy: null,
      learningRate: { sum: 0.1, min: 0.1, max: 0.1 },
      samplesPerSec: { sum: 123.5, min: 123.5, max: 123.5 },
    });
    assert.deepEqual(seg.rows[1].loss, { sum: 6, min: 2, max: 4 });
    assert.deepEqual(seg.rows[1].accuracy, { sum: 1, min: 0.5, max: 0.5 });
    assert.deepEqual(seg.rows[1].regularizationLoss, { sum: 0.75, min: 0.25, max: 0.5 });
    assert.deepEqual(seg.rows[1].samplesPerSec, { sum: 247, min: 123.5, max: 123.5 });
    // A bucket that began without accuracy stays without; one without a regularization term ignores a later one.
    assert.equal(seg.rows[2].accuracy, null);
    assert.equal(seg.rows[2].count, 2);
    assert.equal(seg.rows[2].regularizationLoss, undefined);
    assert.equal(mean(seg.rows[1].loss, seg.rows[1].count), 3);
    assert.deepEqual(openRow(seg)?.first, 5, 'the bucket [5, 8] is still open at 6');
  });

  it('an open bucket is carried into the next segment only when it spans the cut', () => {
    const w = new MetricsSegmentWriter('r', 0, { rawSteps: 2, continues: false });
    for (const s of [1, 2, 3]) w.record(m(s, s));
    const a = w.cut(3, 10);
    const open = openRow(a);
    assert.deepEqual(open && [open.first, open.step, open.count], [3, 4, 1]);
    assert.equal(a.continues, false);
    w.record(m(4, 4));
    const b = w.cut(4, 10);
    assert.equal(b.continues, true);
    assert.equal(b.fromStep, 3);
    assert.equal(openRow(b), null, 'the bucket [3, 4] closed at the cut');
    assert.deepEqual(w.cut(4, 10).rows, [], 'nothing is carried past a closed bucket');
    assert.deepEqual(
      b.rows.map((r) => [r.first, r.step, r.count]),
      [[3, 4, 2]],
    );
    // Carried rows: only one that spans fromStep (first <= fromStep < step).
    const spans = (carried: (typeof a.rows)[0], from: number) =>
      new MetricsSegmentWriter('r', from, { rawSteps: 2, continues: true, carried }).cut(from, 10).rows.length;
    assert.equal(spans(a.rows[2], 3), 1);
    assert.equal(spans(a.rows[2], 4), 0, 'a row ending at the cut is not carried');
    assert.equal(spans(a.rows[2], 2), 0, 'a row starting after the cut is not carried');
    assert.equal(spans({ ...a.rows[2], first: 4 }, 4), 0);
  });

  it('evaluations: one per split and step, the first kept', () => {
    assert.equal(evalKey({ step: 3 }), 'test:3');
    assert.equal(evalKey({ step: 3, split: 'validation' }), 'validation:3');
    const w = new MetricsSegmentWriter('r', 0, { continues: false });
    w.recordEval({ epoch: 1, step: 3, loss: 1, accuracy: 0.5 });
    w.recordEval({ epoch: 1, step: 3, loss: 2, accuracy: 0.5 });
    w.recordEval({ epoch: 1, step: 3, split: 'validation', loss: 3, accuracy: 0.5 });
    const seg = w.cut(3, 3);
    assert.deepEqual(
      seg.evals.map((e) => e.loss),
      [1, 3],
    );
    assert.deepEqual(w.cut(4, 4).evals, [], 'a cut starts the next segment without evaluations');
  });

  it('the stored form round-trips one-step rows, buckets and regularization terms; bad bytes are named', () => {
    const w = new MetricsSegmentWriter('r', 0, { rawSteps: 2, continues: false });
    w.record(m(1, 1, { reg: 0.1 }));
    w.record(m(2, 2, { accuracy: null }));
    w.record(m(3, 3, { reg: 0.2 }));
    w.record(m(4, 5, { reg: 0.3 }));
    w.record(m(5, 1, { accuracy: null }));
    const seg = w.cut(5, 9);
    const bytes = encodeSegment(seg);
    const text = new TextDecoder().decode(bytes);
    assert.ok(text.endsWith('}\n'));
    const stored = JSON.parse(text) as { rows: unknown[] };
    assert.deepEqual(stored.rows[0], [1, 1, 0.5, 0.1, 123.5, 0.1]);
    assert.deepEqual(stored.rows[1], [2, 2, null, 0.1, 123.5]);
    assert.deepEqual((stored.rows[2] as unknown[]).slice(0, 3), [4, 3, 2]);
    assert.deepEqual((stored.rows[3] as unknown[])[4], null);
    assert.deepEqual(decodeSegment(bytes), seg);

    assert.throws(() => decodeSegment(new TextEncoder().encode('{'), 'k1'), /^Error: metrics log k1: not JSON \(/);
    const good = JSON.parse(text) as Record<string, unknown>;
    for (const bad of [
      null,
      { ...good, format: 'other' },
      { ...good, fromStep: 1.5 },
      { ...good, toStep: '5' },
      { ...good, rows: {} },
      { ...good, evals: null },
    ]) {
      assert.throws(() => decodeSegment(enc(bad), 'k2'), {
        message: 'metrics log k2: not a durable-train.metrics/1 segment',
      });
    }
    assert.throws(
      () => decodeSegment(enc({ ...good, rows: [null] })),
      /^Error: metrics log segment: malformed rows \(/,
    );
  });

  it('storage: keys padded to 12 digits, steps listed ascending, a missing segment reads as null, other errors pass', async () => {
    assert.equal(segmentKey('run-1', 42), 'run-1/metrics/seg-000000000042.json');
    const store = new MemStore();
    const segs: MetricsSegment[] = [];
    const w = new MetricsSegmentWriter('r', 0, { rawSteps: 4, continues: false });
    for (let s = 1; s <= 30; s++) {
      w.record(m(s, s));
      if ([10, 3, 25, 30].includes(s)) segs.push(w.cut(s, 30));
    }
    for (const seg of [...segs].reverse()) await writeSegment(store, seg);
    await store.writeAtomic('r/metrics/notes.txt', new Uint8Array());
    await store.writeAtomic('r/metrics/seg-12.json', new Uint8Array());
    assert.deepEqual(await segmentSteps(store, 'r'), [3, 10, 25, 30]);
    assert.equal(await readSegment(store, 'r', 7), null);
    assert.deepEqual((await readSegment(store, 'r', 10))?.toStep, 10);
    const failing = new MemStore();
    failing.read = async () => Promise.reject(new Error('disk on fire'));
    await assert.rejects(readSegment(failing, 'r', 10), { message: 'disk on fire' });
    assert.deepEqual(await dropSegmentsAfter(store, 'r', 10), [25, 30]);
    assert.deepEqual(await segmentSteps(store, 'r'), [3, 10]);
    assert.deepEqual(await dropSegmentsAfter(store, 'r', 10), []);
  });

  it('readChain follows fromStep back, stops at a fork point or a gap, and refuses a segment that does not go back', async () => {
    const store = new MemStore();
    const seg = (fromStep: number, toStep: number, continues: boolean): MetricsSegment => ({
      ...new MetricsSegmentWriter('r', fromStep, { continues }).cut(toStep, 100),
    });
    await writeSegment(store, seg(0, 5, false));
    await writeSegment(store, seg(5, 8, true));
    await writeSegment(store, seg(8, 12, false)); // a fork's first segment: its history starts at 8
    await writeSegment(store, seg(12, 20, true));
    const chain = await readChain(store, 'r', 20);
    assert.deepEqual(
      chain.chain.map((s) => [s.fromStep, s.toStep]),
      [
        [8, 12],
        [12, 20],
      ],
    );
    assert.equal(chain.gapBefore, null);
    const own = await readChain(store, 'r', 8);
    assert.deepEqual(
      own.chain.map((s) => s.toStep),
      [5, 8],
    );
    assert.deepEqual(await readChain(store, 'r', 0), { chain: [], gapBefore: null });
    assert.deepEqual(await readChain(store, 'r', 9), { chain: [], gapBefore: 9 });
    await writeSegment(store, { ...seg(30, 30, true), fromStep: 30, toStep: 30 });
    await assert.rejects(readChain(store, 'r', 30), {
      message: 'metrics log r/metrics/seg-000000000030.json: fromStep 30 is not before 30',
    });
    assert.equal(mergeSegments('r', []).startStep, 0);
    assert.equal(mergeSegments('r', chain.chain).startStep, 8);
  });

  it('mergeSegments: the later version of a row wins, rows and evaluations sorted by step; seriesOf plots bucket means', () => {
    const a = new MetricsSegmentWriter('r', 0, { rawSteps: 2, continues: false });
    for (const s of [1, 2, 3]) a.record(m(s, s, { reg: s }));
    a.recordEval({ epoch: 2, step: 3, loss: 9, accuracy: null });
    a.recordEval({ epoch: 1, step: 1, loss: 8, accuracy: null });
    const s1 = a.cut(3, 10);
    a.record(m(4, 5, { reg: 1 }));
    a.recordEval({ epoch: 2, step: 3, loss: 7, accuracy: null });
    const s2 = a.cut(4, 10);
    const log = mergeSegments('r', [s1, s2]);
    assert.deepEqual(
      mergeSegments('r', [s2, s1]).rows.map((r) => r.step),
      [1, 2, 4],
      'rows sorted by step whatever the order read',
    );
    assert.deepEqual(
      log.rows.map((r) => [r.step, r.count]),
      [
        [1, 1],
        [2, 1],
        [4, 2],
      ],
    );
    assert.deepEqual(
      log.evals.map((e) => [e.step, e.loss]),
      [
        [1, 8],
        [3, 7],
      ],
    );
    assert.deepEqual(log.segments, [
      { fromStep: 0, toStep: 3 },
      { fromStep: 3, toStep: 4 },
    ]);
    assert.deepEqual(seriesOf(log, 'loss'), [
      [1, 1],
      [2, 2],
      [4, 4],
    ]);
    assert.deepEqual(seriesOf(log, 'accuracy'), [
      [1, 0.5],
      [2, 0.5],
      [4, 0.5],
    ]);
    // An open bucket is plotted at the last step it holds so far.
    assert.deepEqual(seriesOf({ rows: s1.rows }, 'regularizationLoss'), [
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    assert.deepEqual(seriesOf({ rows: [{ ...s1.rows[0], regularizationLoss: undefined }] }, 'regularizationLoss'), []);
  });
});
