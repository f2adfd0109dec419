// JSON Lines: one object per line. A feature field holds a number or an array of numbers (several features,
// named field[0], field[1], ...); the label is a string, a number or a boolean.
import { chooseFeatures, decodeText, featureField, nonNumeric, type TextInput } from './csv';
import { DatasetError } from './errors';
import { checkMemory } from './source';
import type { RawTable } from './table';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const shown = (v: unknown) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

export function readJsonlTable(input: TextInput): RawTable {
  const { spec, url, partial } = input;
  const text = decodeText(input.bytes, url, partial);
  const all = text.split('\n');
  if (partial && !text.endsWith('\n')) all.pop(); // cut off by the prefix
  const lineNo: number[] = [];
  const src: string[] = [];
  all.forEach((l, i) => {
    if (l.trim() !== '') {
      lineNo.push(i + 1);
      src.push(l);
    }
  });
  if (src.length === 0) {
    if (partial && text.trim() !== '')
      throw new DatasetError(
        'dataset.path',
        `${url}: the first line does not fit in the first ${input.bytes.length} bytes`,
      );
    throw new DatasetError(
      'dataset.path',
      `${url} is empty: a JSONL dataset needs at least one line with a JSON object`,
    );
  }
  const where = (i: number) => `line ${lineNo[i]} of ${url}`;
  const parse = (i: number): Record<string, unknown> => {
    let v: unknown;
    try {
      v = JSON.parse(src[i]);
    } catch (err) {
      throw new DatasetError('dataset.path', `${where(i)} is not valid JSON (${(err as Error).message})`);
    }
    if (!isObject(v)) throw new DatasetError('dataset.path', `${where(i)} is not a JSON object`);
    return v;
  };
  const first = parse(0);
  const features = chooseFeatures(spec, Object.keys(first), 'field', `the first row (line ${lineNo[0]}) of ${url}`);
  // Widths from the first row: a number is one feature, an array of numbers as many as it has.
  const widths = features.map((f) => {
    const v = first[f];
    if (Array.isArray(v)) {
      if (v.length === 0) throw nonNumeric(spec, 'field', f, '[]', where(0));
      return v.length;
    }
    return 1;
  });
  const nf = widths.reduce((a, b) => a + b, 0);
  const featureNames = features.flatMap((f, k) =>
    Array.isArray(first[f]) ? Array.from({ length: widths[k] }, (_, j) => `${f}[${j}]`) : [f],
  );
  const n = src.length;
  checkMemory('dataset.path', url, n * nf, input.maxBytes);
  const x = new Float32Array(n * nf);
  const labels = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const row = i === 0 ? first : parse(i);
    let off = i * nf;
    features.forEach((f, k) => {
      const v = row[f];
      if (v === undefined)
        throw new DatasetError(featureField(spec, f), `${where(i)} has no field ${JSON.stringify(f)}`);
      if (Array.isArray(v) !== Array.isArray(first[f]) || (Array.isArray(v) && v.length !== widths[k])) {
        throw new DatasetError(
          featureField(spec, f),
          `field ${JSON.stringify(f)} at ${where(i)} is ${shown(v)}, but the first row has ` +
            (Array.isArray(first[f]) ? `an array of ${widths[k]} numbers` : 'a number'),
        );
      }
      for (const e of Array.isArray(v) ? v : [v]) {
        if (typeof e !== 'number' || !Number.isFinite(e)) throw nonNumeric(spec, 'field', f, shown(e), where(i));
        x[off++] = e;
      }
    });
    const label = row[spec.label];
    if (typeof label === 'string' ? label.trim() === '' : typeof label !== 'number' && typeof label !== 'boolean') {
      throw new DatasetError(
        'dataset.label',
        label === undefined
          ? `${where(i)} has no field ${JSON.stringify(spec.label)}`
          : `field ${JSON.stringify(spec.label)} at ${where(i)} is ${shown(label) || 'empty'}; a label is a string, a number or a boolean`,
      );
    }
    labels[i] = typeof label === 'string' ? label.trim() : String(label);
  }
  return { featureShape: [nf], featureNames, x, n, labels, where, labelField: 'dataset.label', labelName: spec.label };
}
