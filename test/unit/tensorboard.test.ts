// TensorBoard event files: TFRecord framing and CRC32C against known values, and TensorBoard's own reader (Python,
// installed from PyPI into .tools/venv by `scripts/setup.sh --test`) loading what we wrote from a store directory:
// every run under the store root, the scalars we wrote step for step, the spec as text, no step twice after a
// resume's reconcile.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FsCheckpointStore } from '../../checkpoint';
import { MetricsSegmentWriter, openRow, writeSegment, type MetricsSegment } from '../../telemetry/metrics-log';
import {
  crc32c,
  decodeEvent,
  eventFileKey,
  eventFileOf,
  maskedCrc32c,
  readTfRecords,
  reconcileEventFiles,
  TAGS,
  tfRecord,
  writeEventFile,
} from '../../telemetry/tensorboard';
import { tensorboardRead } from '../helpers/tensorboard-read';

const f32 = (v: number) => Math.fround(v);

/** A run's segments: steps 1..total, cut at `cuts`, from `start` (a fork starts at its fork point). */
function segmentsOf(runId: string, total: number, cuts: number[], start = 0, rawSteps = 8): MetricsSegment[] {
  const segs: MetricsSegment[] = [];
  let w = new MetricsSegmentWriter(runId, start, { rawSteps, continues: false });
  for (let s = start + 1; s <= total; s++) {
    w.record({
      step: s,
      loss: 1 / s + (runId === 'fork' ? 0.5 : 0),
      accuracy: s / total,
      learningRate: 0.1 / s,
      samplesPerSec: 100 + s,
    });
    if (s % 5 === 0) w.recordEval({ epoch: s / 5 - 1, step: s, loss: 2 / s, accuracy: 0.5 + s / 100 });
    if (cuts.includes(s) || s === total) {
      const seg = w.cut(s, total);
      segs.push(seg);
      w = new MetricsSegmentWriter(runId, s, { rawSteps, continues: true, carried: openRow(seg) });
    }
  }
  return segs;
}

describe('TensorBoard event files', () => {
  it('frames records with masked CRC32C as TFRecord does', () => {
    assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283); // the CRC-32C check value
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    const rec = tfRecord(new TextEncoder().encode('hello'));
    assert.equal(rec.length, 8 + 4 + 5 + 4);
    assert.equal(new DataView(rec.buffer).getUint32(8, true), maskedCrc32c(rec.subarray(0, 8)));
    assert.deepEqual(
      readTfRecords(rec).map((r) => new TextDecoder().decode(r)),
      ['hello'],
    );
    const bad = rec.slice();
    bad[13] ^= 1;
    assert.throws(() => readTfRecords(bad), /bad data crc/);
  });

  it('writes each row at the step it ends, test metrics at their evaluation, the spec once', () => {
    const segs = segmentsOf('r', 20, [9]);
    const events = segs.flatMap((s) =>
      readTfRecords(eventFileOf(s, { wallTime: 1, specText: '{"epochs": 2}' })).map(decodeEvent),
    );
    assert.equal(events.filter((e) => e.fileVersion === 'brain.Event:2').length, 2);
    assert.deepEqual(
      events.flatMap((e) => Object.keys(e.texts)),
      [TAGS.spec],
    );
    const lossSteps = events.filter((e) => TAGS.loss in e.scalars).map((e) => e.step);
    // Raw steps 1..8, then buckets of 2 ending at 10, 12, ..., 16, then of 4 ending at 20; the bucket 9..10 spans
    // the cut at 9 and is written once, by the segment it ends in.
    assert.deepEqual(lossSteps, [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20]);
    const at10 = events.find((e) => e.step === 10)!;
    assert.equal(at10.scalars[TAGS.loss], f32((1 / 9 + 1 / 10) / 2));
    assert.equal(at10.scalars[TAGS.testLoss], f32(2 / 10));
  });

  it('TensorBoard reads every run under the store root, the scalars we wrote, no step twice after a resume', async function () {
    this.timeout(120_000);
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-tensorboard-'));
    const store = new FsCheckpointStore(root);
    const spec = JSON.stringify({ epochs: 4, batchSize: 8 }, null, 2);
    // Run r: committed at 9 and 14; a crashed chunk wrote its segment and event file up to 17 before the kill
    // (as if its manifest had been written and the run then fell back to 14).
    const crashed = segmentsOf('r', 20, [9, 14, 17]);
    for (const seg of crashed.filter((s) => s.toStep <= 17)) {
      await writeSegment(store, seg);
      await writeEventFile(store, seg, spec);
    }
    // The resume from 14: segments after it dropped (the activity does that first), event files reconciled.
    fs.rmSync(path.join(root, 'r', 'metrics', 'seg-000000000017.json'));
    const rec = await reconcileEventFiles(store, 'r', 14, spec);
    assert.deepEqual(rec.deleted, [eventFileKey('r', 14, 17)]);
    assert.deepEqual(rec.written, []);
    const resumed = segmentsOf('r', 20, [9, 14]).filter((s) => s.fromStep >= 14);
    for (const seg of resumed) {
      await writeSegment(store, seg);
      await writeEventFile(store, seg, spec);
    }
    // A fork of r at step 10, in the same store under its own run id.
    for (const seg of segmentsOf('fork', 16, [], 10)) {
      await writeSegment(store, seg);
      await writeEventFile(store, seg, spec);
    }

    const tb = tensorboardRead(root);
    assert.deepEqual(Object.keys(tb.scalars).sort(), ['fork/tensorboard', 'r/tensorboard']);
    const uninterrupted = segmentsOf('r', 20, []).flatMap((s) =>
      readTfRecords(eventFileOf(s, { wallTime: 1 })).map(decodeEvent),
    );
    for (const tag of [
      TAGS.loss,
      TAGS.accuracy,
      TAGS.learningRate,
      TAGS.samplesPerSec,
      TAGS.testLoss,
      TAGS.testAccuracy,
    ]) {
      const want = uninterrupted.filter((e) => tag in e.scalars).map((e) => [e.step, f32(e.scalars[tag])]);
      assert.ok(want.length > 0, tag);
      assert.deepEqual(tb.scalars['r/tensorboard'][tag], want, tag);
    }
    assert.deepEqual(
      tb.scalars['r/tensorboard'][TAGS.loss].map(([s]) => s),
      [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20],
    );
    assert.deepEqual(
      tb.scalars['fork/tensorboard'][TAGS.loss].map(([s]) => s),
      [12, 14, 16], // its first bucket, 11..12, ends at 12
    );
    assert.equal(tb.scalars['fork/tensorboard'][TAGS.loss][0][1], f32((1 / 11 + 0.5 + (1 / 12 + 0.5)) / 2));
    assert.equal(tb.texts['r/tensorboard'][TAGS.spec]?.length, 1);
    assert.match(tb.texts['r/tensorboard'][TAGS.spec][0], /"batchSize": 8/);
  });
});
