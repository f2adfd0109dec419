// TensorBoard event files from the metrics log. An event file is a TFRecord stream (per record: uint64 length,
// masked CRC32C of the length, the bytes, masked CRC32C of the bytes) of `Event` protocol buffers (TensorFlow's
// event.proto / summary.proto; only the fields written here are declared). There is no maintained writer on npm;
// protobufjs encodes the messages.
//
// One event file per committed metrics segment, named by its step range so files sort in step order:
// <runId>/tensorboard/events.out.tfevents.<fromStep>-<toStep>.durable-train. A file holds exactly the segment's
// rows (a bucket at the step it completes), so no step is written twice; on resume the files of segments that were
// never committed are deleted and the committed ones regenerated from the log (reconcile), so `tensorboard --logdir`
// on the store shows each run (and each fork, under its own run id) once, step for step.
import * as protobuf from 'protobufjs';
import type { EvalPoint, MetricsRow, MetricsSegment, MetricsStore } from './metrics-log';
import { readChain } from './metrics-log';

const PROTO = `
syntax = "proto3";
package tensorboard;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    Summary summary = 5;
  }
}
message Summary {
  message Value {
    string tag = 1;
    float simple_value = 2;
    TensorProto tensor = 8;
    SummaryMetadata metadata = 9;
  }
  repeated Value value = 1;
}
message SummaryMetadata {
  message PluginData {
    string plugin_name = 1;
    bytes content = 2;
  }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
  int32 data_class = 4;
}
message TensorShapeProto {
  message Dim { int64 size = 1; string name = 2; }
  repeated Dim dim = 2;
}
message TensorProto {
  int32 dtype = 1;
  TensorShapeProto tensor_shape = 2;
  repeated bytes string_val = 8;
}
`;

const root = protobuf.parse(PROTO, { keepCase: true }).root;
const EventType = root.lookupType('tensorboard.Event');

const DT_STRING = 7;
/** SummaryMetadata.DataClass: DATA_CLASS_TENSOR (what the text plugin's summaries carry). */
const DATA_CLASS_TENSOR = 2;

// ---- TFRecord framing ----

/** CRC32C (Castagnoli, reflected polynomial 0x82F63B78) lookup table. */
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 bits and add a constant. */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length (uint64 LE), masked CRC of the length, data, masked CRC of the data. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** Splits a TFRecord stream into its records, checking both CRCs of each. */
export function readTfRecords(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) throw new Error(`tfrecord: truncated header at byte ${at}`);
    const len = Number(view.getBigUint64(at, true));
    if (view.getUint32(at + 8, true) !== maskedCrc32c(bytes.subarray(at, at + 8)))
      throw new Error(`tfrecord: bad length crc at byte ${at}`);
    const data = bytes.subarray(at + 12, at + 12 + len);
    if (data.length !== len || at + 16 + len > bytes.length) throw new Error(`tfrecord: truncated record at ${at}`);
    if (view.getUint32(at + 12 + len, true) !== maskedCrc32c(data))
      throw new Error(`tfrecord: bad data crc at byte ${at}`);
    out.push(data);
    at += 16 + len;
  }
  return out;
}

// ---- events ----

export interface ScalarEvent {
  step: number;
  wallTime: number;
  tag: string;
  value: number;
}

function eventBytes(e: Record<string, unknown>): Uint8Array {
  return EventType.encode(EventType.fromObject(e)).finish();
}

export function fileVersionEvent(wallTime: number): Uint8Array {
  return eventBytes({ wall_time: wallTime, step: 0, file_version: 'brain.Event:2' });
}

/** The scalars of one step in one Event (TensorBoard reads simple_value as a scalar). */
export function scalarsEvent(step: number, wallTime: number, values: Array<[string, number]>): Uint8Array {
  return eventBytes({
    wall_time: wallTime,
    step,
    summary: { value: values.map(([tag, v]) => ({ tag, simple_value: v })) },
  });
}

/** A text summary (the text plugin: a string tensor, markdown). */
export function textEvent(step: number, wallTime: number, tag: string, text: string): Uint8Array {
  return eventBytes({
    wall_time: wallTime,
    step,
    summary: {
      value: [
        {
          tag,
          metadata: { plugin_data: { plugin_name: 'text', content: new Uint8Array() }, data_class: DATA_CLASS_TENSOR },
          tensor: { dtype: DT_STRING, tensor_shape: {}, string_val: [new TextEncoder().encode(text)] },
        },
      ],
    },
  });
}

/** Decodes an Event (for tests and tools): step, wall time and its scalar values by tag. */
export function decodeEvent(bytes: Uint8Array): {
  step: number;
  wallTime: number;
  fileVersion?: string;
  scalars: Record<string, number>;
  texts: Record<string, string>;
} {
  const o = EventType.toObject(EventType.decode(bytes), { longs: Number, bytes: Array }) as {
    step?: number;
    wall_time?: number;
    file_version?: string;
    summary?: { value?: Array<{ tag: string; simple_value?: number; tensor?: { string_val?: number[][] } }> };
  };
  const scalars: Record<string, number> = {};
  const texts: Record<string, string> = {};
  for (const v of o.summary?.value ?? []) {
    if (v.tensor?.string_val?.length) texts[v.tag] = new TextDecoder().decode(Uint8Array.from(v.tensor.string_val[0]));
    else scalars[v.tag] = v.simple_value ?? 0;
  }
  return { step: o.step ?? 0, wallTime: o.wall_time ?? 0, fileVersion: o.file_version, scalars, texts };
}

// ---- from the metrics log ----

/** Tag names, grouped the way TensorBoard groups by prefix. */
export const TAGS = {
  loss: 'train/loss',
  accuracy: 'train/accuracy',
  learningRate: 'train/learning_rate',
  samplesPerSec: 'train/samples_per_sec',
  regularizationLoss: 'train/regularization_loss',
  testLoss: 'test/loss',
  testAccuracy: 'test/accuracy',
  testMae: 'test/mae',
  testMse: 'test/mse',
  validationLoss: 'validation/loss',
  validationAccuracy: 'validation/accuracy',
  validationMae: 'validation/mae',
  validationMse: 'validation/mse',
  spec: 'spec',
} as const;

export const tensorboardPrefix = (runId: string) => `${runId}/tensorboard/`;
const pad = (n: number) => String(n).padStart(12, '0');
export const eventFileKey = (runId: string, fromStep: number, toStep: number) =>
  `${tensorboardPrefix(runId)}events.out.tfevents.${pad(fromStep)}-${pad(toStep)}.durable-train`;

/** The rows a segment's event file holds: those that end inside it, and the last one if the run ends there. */
function rowsToWrite(seg: MetricsSegment): Array<{ step: number; row: MetricsRow }> {
  const out: Array<{ step: number; row: MetricsRow }> = [];
  for (const r of seg.rows) {
    if (r.step > seg.fromStep && r.step <= seg.toStep) out.push({ step: r.step, row: r });
    else if (r.step > seg.toStep && seg.toStep >= seg.totalSteps) out.push({ step: r.first + r.count - 1, row: r });
  }
  return out;
}

function evalScalars(e: EvalPoint): Array<[string, number]> {
  const val = e.split === 'validation';
  const v: Array<[string, number]> = [[val ? TAGS.validationLoss : TAGS.testLoss, e.loss]];
  if (e.accuracy !== null) v.push([val ? TAGS.validationAccuracy : TAGS.testAccuracy, e.accuracy]);
  if (e.mae !== undefined) v.push([val ? TAGS.validationMae : TAGS.testMae, e.mae]);
  if (e.mse !== undefined) v.push([val ? TAGS.validationMse : TAGS.testMse, e.mse]);
  for (const m of ['auc', 'precision', 'recall', 'f1'] as const) {
    const x = e[m];
    if (typeof x === 'number') v.push([`${val ? 'validation' : 'test'}/${m}`, x]);
  }
  return v;
}

/** The event file of one committed segment; the first segment of a run's history also carries the spec as text. */
export function eventFileOf(seg: MetricsSegment, opts: { wallTime: number; specText?: string }): Uint8Array {
  const records: Uint8Array[] = [tfRecord(fileVersionEvent(opts.wallTime))];
  if (!seg.continues && opts.specText)
    records.push(tfRecord(textEvent(seg.fromStep, opts.wallTime, TAGS.spec, '```\n' + opts.specText + '\n```')));
  const evals = new Map<number, EvalPoint[]>();
  for (const e of seg.evals) evals.set(e.step, [...(evals.get(e.step) ?? []), e]);
  for (const { step, row } of rowsToWrite(seg)) {
    const n = row.count;
    const values: Array<[string, number]> = [
      [TAGS.loss, row.loss.sum / n],
      [TAGS.learningRate, row.learningRate.sum / n],
      [TAGS.samplesPerSec, row.samplesPerSec.sum / n],
    ];
    if (row.accuracy) values.push([TAGS.accuracy, row.accuracy.sum / n]);
    if (row.regularizationLoss) values.push([TAGS.regularizationLoss, row.regularizationLoss.sum / n]);
    const ev = evals.get(step);
    if (ev) {
      for (const e of ev) values.push(...evalScalars(e));
      evals.delete(step);
    }
    records.push(tfRecord(scalarsEvent(step, opts.wallTime, values)));
  }
  for (const [step, ev] of evals)
    records.push(
      tfRecord(
        scalarsEvent(
          step,
          opts.wallTime,
          ev.flatMap((e) => evalScalars(e)),
        ),
      ),
    );
  const total = records.reduce((n, r) => n + r.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const r of records) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

/** Writes the event file of a committed segment (after its checkpoint is committed). */
export async function writeEventFile(store: MetricsStore, seg: MetricsSegment, specText?: string): Promise<void> {
  await store.writeAtomic(
    eventFileKey(seg.runId, seg.fromStep, seg.toStep),
    eventFileOf(seg, { wallTime: Date.now() / 1000, specText }),
  );
}

/**
 * Makes the run's event files match its committed history ending at `endStep` (the checkpoint a run resumes from):
 * deletes the files of segments off that history (work after the checkpoint that was never committed) and writes
 * those missing (a crash between a commit and its event file). Returns what it changed.
 */
export async function reconcileEventFiles(
  store: MetricsStore,
  runId: string,
  endStep: number,
  specText?: string,
): Promise<{ deleted: string[]; written: string[] }> {
  const { chain } = await readChain(store, runId, endStep);
  const want = new Map(chain.map((s) => [eventFileKey(runId, s.fromStep, s.toStep), s]));
  const have = await store.list(tensorboardPrefix(runId));
  const deleted = have.filter((k) => !want.has(k));
  for (const k of deleted) await store.delete(k);
  const written: string[] = [];
  for (const [k, seg] of want) {
    if (have.includes(k)) continue;
    await writeEventFile(store, seg, specText);
    written.push(k);
  }
  return { deleted, written };
}
