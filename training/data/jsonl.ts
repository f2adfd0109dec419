// JSON Lines: one object per line. A feature field holds a number or an array of numbers (several features,
// named field[0], field[1], ...); the label is a string, a number or a boolean.
import { DatasetError } from './errors';
import { RowSink, splitTagOf, type RawTable } from './table';
import { fitsFloat32 } from '../errors';
import {
  asBuffer,
  beyondFloat32,
  chooseFeatures,
  featureField,
  nonNumeric,
  nonBlankTextBytes,
  type TextInput,
} from './text';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const shown = (v: unknown) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

export function readJsonlTable(input: TextInput): RawTable {
  const { spec, url } = input;
  const bytes = nonBlankTextBytes(
    input,
    'the first line',
    'a JSONL dataset needs at least one line with a JSON object',
  );
  const buf = asBuffer(bytes);
  let features: string[] = [];
  let widths: number[] = [];
  let arrays: boolean[] = [];
  let values = new Float32Array(0);
  let sink: RowSink | null = null;
  let firstLine = 0;
  let line = 0;
  // A UTF-8 byte order mark (as editors on Windows write) is no part of the first row, as in a CSV file.
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  for (let start = bom; start < bytes.length;) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    line++;
    const text = buf.toString('utf8', start, end);
    start = end + 1;
    if (text.trim() === '') continue;
    const where = `line ${line} of ${url}`;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (err) {
      throw new DatasetError('dataset.path', `${where} is not valid JSON (${(err as Error).message})`);
    }
    if (!isObject(row)) throw new DatasetError('dataset.path', `${where} is not a JSON object`);
    if (!sink) {
      // The first row fixes the features and their widths: a number is one feature, an array as many as it has.
      firstLine = line;
      const first = row;
      features = chooseFeatures(spec, Object.keys(first), 'field', `the first row (line ${line}) of ${url}`);
      arrays = features.map((f) => Array.isArray(first[f]));
      widths = features.map((f) => {
        const v = first[f];
        if (!Array.isArray(v)) return 1;
        if (v.length === 0) throw nonNumeric(spec, 'field', f, '[]', where);
        return v.length;
      });
      const names = features.flatMap((f, k) =>
        arrays[k] ? Array.from({ length: widths[k] }, (_, j) => `${f}[${j}]`) : [f],
      );
      sink = new RowSink(spec, url, [names.length], names, input.maxBytes);
      values = new Float32Array(names.length);
    }
    let off = 0;
    features.forEach((f, k) => {
      const v = row[f];
      if (v === undefined) throw new DatasetError(featureField(spec, f), `${where} has no field ${JSON.stringify(f)}`);
      if (Array.isArray(v) !== arrays[k] || (Array.isArray(v) && v.length !== widths[k])) {
        throw new DatasetError(
          featureField(spec, f),
          `field ${JSON.stringify(f)} at ${where} is ${shown(v)}, but the first row (line ${firstLine}) has ` +
            (arrays[k] ? `an array of ${widths[k]} numbers` : 'a number'),
        );
      }
      for (const e of Array.isArray(v) ? v : [v]) {
        if (typeof e !== 'number' || !Number.isFinite(e)) throw nonNumeric(spec, 'field', f, shown(e), where);
        if (!fitsFloat32(e)) throw beyondFloat32(spec, 'field', f, where);
        values[off++] = e;
      }
    });
    const label = row[spec.label];
    if (typeof label === 'string' ? label.trim() === '' : typeof label !== 'number' && typeof label !== 'boolean') {
      throw new DatasetError(
        'dataset.label',
        label === undefined
          ? `${where} has no field ${JSON.stringify(spec.label)}`
          : `field ${JSON.stringify(spec.label)} at ${where} is ${shown(label) || 'empty'}; a label is a string, a number or a boolean`,
      );
    }
    let tag: number | undefined;
    if (spec.splitColumn !== undefined) {
      const v = row[spec.splitColumn];
      if (typeof v !== 'string') {
        throw new DatasetError(
          'dataset.splitColumn',
          `field ${JSON.stringify(spec.splitColumn)} at ${where} is ${v === undefined ? 'missing' : shown(v)}; a split is one of train, validation, test`,
        );
      }
      tag = splitTagOf(v, spec.splitColumn, where);
    }
    sink.push(values, typeof label === 'string' ? label.trim() : String(label), line, tag);
  }
  return sink!.finish();
}
