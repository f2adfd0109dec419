// RFC 4180 CSV: comma-separated fields, CRLF or LF record ends, double-quoted fields that may hold commas, line
// breaks and doubled quotes. No CSV parser is among the project's dependencies, so this small strict one reports
// every problem with its 1-based line number.
import { DatasetError } from './errors';
import { checkMemory } from './source';
import { parseDecimal, type RawTable } from './table';
import type { FileDataSpec } from './types';

export interface CsvRecords {
  records: string[][];
  /** 1-based line where each record starts. */
  lines: number[];
}

/**
 * Parses `text`. With `partial`, the text is a prefix of a larger file: a record cut off by the end (an open quote
 * or no final line break) is dropped instead of being an error or a short record.
 */
export function parseCsv(text: string, where: string, field: string, partial = false): CsvRecords {
  const records: string[][] = [];
  const lines: number[] = [];
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // UTF-8 byte order mark
  let line = 1;
  while (i < n) {
    const startLine = line;
    const rec: string[] = [];
    let ended = false; // the record ended with a line break
    let quoted = false;
    for (;;) {
      let value: string;
      if (text.charCodeAt(i) === 0x22) {
        // quoted field
        quoted = true;
        const quoteLine = line;
        let out = '';
        let j = i + 1;
        for (;;) {
          const q = text.indexOf('"', j);
          if (q < 0) {
            if (partial) return { records, lines };
            throw new DatasetError(field, `${where}: line ${quoteLine} opens a quoted field that is never closed`);
          }
          const chunk = text.slice(j, q);
          for (let k = 0; k < chunk.length; k++) if (chunk.charCodeAt(k) === 0x0a) line++;
          out += chunk;
          if (text.charCodeAt(q + 1) === 0x22) {
            out += '"';
            j = q + 2;
          } else {
            i = q + 1;
            break;
          }
        }
        value = out;
        const c = i < n ? text.charCodeAt(i) : -1;
        if (c !== -1 && c !== 0x2c && c !== 0x0a && c !== 0x0d) {
          throw new DatasetError(
            field,
            `${where}: line ${line} has text after the closing quote of a field (a quote inside a field must be doubled)`,
          );
        }
      } else {
        let j = i;
        while (j < n) {
          const c = text.charCodeAt(j);
          if (c === 0x2c || c === 0x0a || c === 0x0d) break;
          if (c === 0x22) {
            throw new DatasetError(
              field,
              `${where}: line ${line} has a quote inside an unquoted field (quote the whole field and double the quote)`,
            );
          }
          j++;
        }
        value = text.slice(i, j);
        i = j;
      }
      rec.push(value);
      if (i >= n) break;
      const c = text.charCodeAt(i);
      if (c === 0x2c) {
        i++;
        continue;
      }
      // line break: CRLF, LF or a lone CR
      i += c === 0x0d && text.charCodeAt(i + 1) === 0x0a ? 2 : 1;
      line++;
      ended = true;
      break;
    }
    if (partial && !ended) break;
    // A blank line (one empty unquoted field) is no record.
    if (rec.length === 1 && rec[0] === '' && !quoted) continue;
    records.push(rec);
    lines.push(startLine);
  }
  return { records, lines };
}

export interface TextInput {
  spec: FileDataSpec;
  url: string;
  bytes: Uint8Array;
  /** The bytes are a prefix of the file (the quick check before a run starts). */
  partial: boolean;
  maxBytes: number;
}

export function decodeText(bytes: Uint8Array, url: string, partial: boolean): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: partial });
  } catch {
    throw new DatasetError('dataset.path', `${url} is not UTF-8 text`);
  }
}

/** Where spec.features names a column/field: `dataset.features[i]`, or `dataset.features` for the default list. */
export function featureField(spec: FileDataSpec, name: string): string {
  const i = spec.features?.indexOf(name) ?? -1;
  return i >= 0 ? `dataset.features[${i}]` : 'dataset.features';
}

export function nonNumeric(spec: FileDataSpec, kind: string, name: string, value: string, where: string): DatasetError {
  return new DatasetError(
    featureField(spec, name),
    `${kind} ${JSON.stringify(name)} has ${value === '' ? 'an empty value' : `the non-numeric value ${JSON.stringify(value)}`} ` +
      `at ${where}; features must be numbers (list the numeric ${kind}s in dataset.features)`,
  );
}

/** Checks spec.features against the available names; returns the feature list (default: all but the label). */
export function chooseFeatures(spec: FileDataSpec, names: string[], kind: string, url: string): string[] {
  const list = `(${kind}s: ${names.join(', ')})`;
  if (!names.includes(spec.label)) {
    throw new DatasetError('dataset.label', `no ${kind} ${JSON.stringify(spec.label)} in ${url} ${list}`);
  }
  if (spec.features === undefined) {
    const features = names.filter((c) => c !== spec.label);
    if (features.length === 0) throw new DatasetError('dataset.features', `${url} has no ${kind} besides the label`);
    return features;
  }
  spec.features.forEach((f, i) => {
    if (!names.includes(f))
      throw new DatasetError(`dataset.features[${i}]`, `no ${kind} ${JSON.stringify(f)} in ${url} ${list}`);
  });
  return spec.features;
}

export function readCsvTable(input: TextInput): RawTable {
  const { spec, url, partial } = input;
  const text = decodeText(input.bytes, url, partial);
  if (text.trim() === '') {
    throw new DatasetError(
      'dataset.path',
      `${url} is empty: a CSV dataset needs a header row and at least one data row`,
    );
  }
  const { records, lines } = parseCsv(text, url, 'dataset.path', partial);
  if (records.length === 0)
    throw new DatasetError(
      'dataset.path',
      `${url}: the header row does not fit in the first ${input.bytes.length} bytes`,
    );
  const header = records[0].map((h) => h.trim());
  header.forEach((h, i) => {
    if (h === '') throw new DatasetError('dataset.path', `${url}: column ${i + 1} of the header row has no name`);
    const first = header.indexOf(h);
    if (first !== i)
      throw new DatasetError(
        'dataset.path',
        `${url}: the header names column ${JSON.stringify(h)} twice (columns ${first + 1} and ${i + 1})`,
      );
  });
  const features = chooseFeatures(spec, header, 'column', url);
  const n = records.length - 1;
  if (n === 0 && !partial) throw new DatasetError('dataset.path', `${url} has a header row but no data rows`);
  checkMemory('dataset.path', url, n * features.length, input.maxBytes);
  const cols = features.map((f) => header.indexOf(f));
  const labelCol = header.indexOf(spec.label);
  const nf = features.length;
  const x = new Float32Array(n * nf);
  const labels = new Array<string>(n);
  const where = (i: number) => `line ${lines[i + 1]} of ${url}`;
  for (let i = 0; i < n; i++) {
    const rec = records[i + 1];
    if (rec.length !== header.length) {
      throw new DatasetError('dataset.path', `${where(i)} has ${rec.length} fields, the header has ${header.length}`);
    }
    for (let j = 0; j < nf; j++) {
      const v = parseDecimal(rec[cols[j]]);
      if (Number.isNaN(v)) throw nonNumeric(spec, 'column', features[j], rec[cols[j]], where(i));
      x[i * nf + j] = v;
    }
    const label = rec[labelCol].trim();
    if (label === '')
      throw new DatasetError('dataset.label', `column ${JSON.stringify(spec.label)} is empty at ${where(i)}`);
    labels[i] = label;
  }
  return {
    featureShape: [nf],
    featureNames: features,
    x,
    n,
    labels,
    where,
    labelField: 'dataset.label',
    labelName: spec.label,
  };
}
