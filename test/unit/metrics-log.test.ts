// The metrics log: bucketing past the raw budget, the size bound, exactness across segment cuts (a resumed chunk
// carries the open bucket on), and reading only the committed chain of segments from a real filesystem store.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FsCheckpointStore, type CheckpointStore } from '../../checkpoint';
import { S3CheckpointStore } from '../../storage/s3';
import { useS3Server } from '../helpers/s3-server';
import {
  bucketOf,
  decodeSegment,
  DEFAULT_RAW_STEPS,
  dropSegmentsAfter,
  encodeSegment,
  mergeSegments,
  MetricsSegmentWriter,
  openRow,
  readMetricsLog,
  segmentKey,
  segmentSteps,
  seriesOf,
  writeSegment,
  type MetricsSegment,
  type StepMetrics,
} from '../../telemetry/metrics-log';
import { decodeEvent, eventFileOf, readTfRecords, TAGS } from '../../telemetry/tensorboard';

/** Deterministic, irregular values (sums of them are order-sensitive in floating point). */
const stepAt = (step: number): StepMetrics => ({
  step,
  loss: 2 / (1 + step * 0.013) + Math.sin(step * 1.7) * 0.1,
  accuracy: ((step * 7919) % 101) / 100,
  learningRate: 0.01 * Math.pow(0.999, step),
  samplesPerSec: 1000,
});

/** Runs steps 1..total, cutting a segment at each step in `cuts` and at the end; each cut starts a new writer. */
function run(total: number, cuts: number[], rawSteps: number): MetricsSegment[] {
  const segs: MetricsSegment[] = [];
  let w = new MetricsSegmentWriter('r', 0, { rawSteps, continues: false });
  for (let s = 1; s <= total; s++) {
    w.record(stepAt(s));
    if (cuts.includes(s) || s === total) {
      const seg = w.cut(s, total);
      segs.push(seg);
      // A new chunk (as after a restore) from the stored segment only: what the activity does.
      w = new MetricsSegmentWriter('r', s, { rawSteps, continues: true, carried: openRow(seg) });
    }
  }
  return segs;
}

/** Segments of a crashed chunk are never read and are dropped on resume; the resumed log equals the whole run's. */
async function committedChain(store: CheckpointStore, removeSegment: (key: string) => Promise<void>): Promise<void> {
  const whole = run(40, [], 8);
  // Committed at 10 and 25; a crashed attempt wrote a segment to 33 but never committed its checkpoint.
  const first = run(40, [10, 25, 33], 8);
  for (const seg of first) if (seg.toStep <= 33) await writeSegment(store, seg);
  assert.deepEqual(await segmentSteps(store, 'r'), [10, 25, 33]);
  // Reading from the newest committed checkpoint (25) ignores 33.
  const at25 = await readMetricsLog(store, 'r', 25);
  assert.deepEqual(at25.segments, [
    { fromStep: 0, toStep: 10 },
    { fromStep: 10, toStep: 25 },
  ]);
  assert.equal(at25.gapBefore, null);
  assert.ok(at25.rows.every((r) => r.first <= 25));
  // The resume drops it, then commits 30 and 40 from 25.
  assert.deepEqual(await dropSegmentsAfter(store, 'r', 25), [33]);
  const resumed = run(40, [10, 25, 30], 8).filter((s) => s.toStep > 25);
  for (const seg of resumed) await writeSegment(store, seg);
  const log = await readMetricsLog(store, 'r', 40);
  assert.deepEqual(log.rows, mergeSegments('r', whole).rows);
  assert.deepEqual(
    seriesOf(log, 'loss').map(([s]) => s),
    [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40],
  );
  // A missing segment is reported, not papered over.
  await removeSegment(segmentKey('r', 10));
  assert.equal((await readMetricsLog(store, 'r', 40)).gapBefore, 10);
}

describe('metrics log', () => {
  it('keeps a regularization loss beside the loss (one step and buckets), through the stored form and into TensorBoard', () => {
    const w = new MetricsSegmentWriter('r', 0, { rawSteps: 2, continues: false });
    for (const [step, reg] of [
      [1, 0.5],
      [2, 0.25],
      [3, 0.125],
      [4, 0.375],
    ])
      w.record({ step, loss: 1, accuracy: null, learningRate: 0.1, samplesPerSec: 10, regularizationLoss: reg });
    const seg = decodeSegment(encodeSegment(w.cut(4, 4)));
    assert.deepEqual(
      seg.rows.map((r) => r.regularizationLoss),
      [
        { sum: 0.5, min: 0.5, max: 0.5 },
        { sum: 0.25, min: 0.25, max: 0.25 },
        { sum: 0.5, min: 0.125, max: 0.375 },
      ],
    );
    assert.deepEqual(seriesOf(seg, 'regularizationLoss'), [
      [1, 0.5],
      [2, 0.25],
      [4, 0.25],
    ]);
    const events = readTfRecords(eventFileOf(seg, { wallTime: 1 })).map(decodeEvent);
    assert.deepEqual(
      events
        .filter((e) => TAGS.regularizationLoss in e.scalars)
        .map((e) => [e.step, e.scalars[TAGS.regularizationLoss]]),
      [
        [1, 0.5],
        [2, 0.25],
        [4, 0.25],
      ],
    );
    // A model without regularizers stores its rows as before: five numbers a step.
    const plain = new MetricsSegmentWriter('r', 0, { rawSteps: 2, continues: false });
    plain.record({ step: 1, loss: 1, accuracy: null, learningRate: 0.1, samplesPerSec: 10 });
    const stored = JSON.parse(new TextDecoder().decode(encodeSegment(plain.cut(1, 1))));
    assert.deepEqual(stored.rows, [[1, 1, null, 0.1, 10]]);
  });

  it('keeps every step up to the budget, then buckets whose width doubles with the run', () => {
    assert.deepEqual(bucketOf(1, 8), { first: 1, last: 1 });
    assert.deepEqual(bucketOf(8, 8), { first: 8, last: 8 });
    assert.deepEqual(bucketOf(9, 8), { first: 9, last: 10 });
    assert.deepEqual(bucketOf(16, 8), { first: 15, last: 16 });
    assert.deepEqual(bucketOf(17, 8), { first: 17, last: 20 });
    assert.deepEqual(bucketOf(33, 8), { first: 33, last: 40 });
    assert.throws(() => bucketOf(0, 8), /step must be an integer >= 1/);
    assert.throws(() => bucketOf(5, 7), /rawSteps must be an even integer/);
    // Buckets tile the steps: consecutive, no gaps, no overlaps.
    let next = 1;
    for (let s = 1; s <= 5000; s++) {
      const b = bucketOf(s, 8);
      if (b.first === s) {
        assert.equal(b.first, next);
        next = b.last + 1;
      }
      assert.ok(b.first <= s && s <= b.last);
    }
  });

  it('aggregates mean/min/max per bucket', () => {
    const w = new MetricsSegmentWriter('r', 0, { rawSteps: 2, continues: false });
    for (const [step, loss] of [
      [1, 5],
      [2, 4],
      [3, 3],
      [4, 1],
    ])
      w.record({ step, loss, accuracy: null, learningRate: 0.1, samplesPerSec: 10 });
    const seg = w.cut(4, 4);
    assert.deepEqual(
      seg.rows.map((r) => [r.first, r.step, r.count, r.loss.sum / r.count, r.loss.min, r.loss.max]),
      [
        [1, 1, 1, 5, 5, 5],
        [2, 2, 1, 4, 4, 4],
        [3, 4, 2, 2, 1, 3],
      ],
    );
    assert.equal(seg.rows[2].accuracy, null);
  });

  it('stays a few MB for a million-step run', () => {
    const segs = run(1_000_000, [], DEFAULT_RAW_STEPS);
    const rows = segs[0].rows.length;
    const bytes = encodeSegment(segs[0]).length;
    assert.ok(rows < 25_000, `rows ${rows}`);
    assert.ok(bytes < 5e6, `bytes ${bytes}`);
    assert.deepEqual(decodeSegment(encodeSegment(segs[0])), segs[0]);
    assert.equal(
      segs[0].rows.reduce((n, r) => n + r.count, 0),
      1_000_000,
    );
  });

  it('gives the same rows however the run is cut into segments (open buckets carried on)', () => {
    const whole = mergeSegments('r', run(300, [], 16));
    for (const cuts of [[1], [17], [18, 19, 20], [50, 51, 99, 130, 131, 257], [16, 32, 64, 128, 256]]) {
      const cut = mergeSegments('r', run(300, cuts, 16));
      assert.deepEqual(cut.rows, whole.rows, `cuts ${cuts}`);
    }
    assert.equal(
      whole.rows.reduce((n, r) => n + r.count, 0),
      300,
    );
    assert.ok(whole.rows.some((r) => r.count === 2) && whole.rows.some((r) => r.count === 16));
  });

  it('reads only the committed chain: segments of a crashed chunk are ignored and dropped on resume (fs)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-metrics-log-'));
    await committedChain(new FsCheckpointStore(dir), async (key) => fs.rmSync(path.join(dir, key)));
  });

  describe('in S3 (a real SeaweedFS server)', function () {
    const server = useS3Server();

    it('reads only the committed chain: segments of a crashed chunk are ignored and dropped on resume (s3)', async () => {
      const srv = server();
      const store = new S3CheckpointStore({
        bucket: srv.bucket,
        prefix: 'metrics-log-test',
        endpoint: srv.endpoint,
        region: srv.region,
        credentials: { accessKeyId: srv.accessKey, secretAccessKey: srv.secretKey },
        requestTimeoutMs: 10_000,
      });
      await committedChain(store, (key) => store.delete(key));
    });
  });
});
