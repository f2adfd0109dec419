// The CSV scanner against RFC 4180 writing of arbitrary tables (property test): every table written with quoting
// reads back exactly, with the line each record starts on; a prefix cut at any line break (the quick check before
// a run) reads back a prefix of the records.
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { scanCsv } from '../../training/data/csv';

function field(s: string, alone: boolean): string {
  // Quote when needed, and an empty field alone on its line (unquoted it would be a blank line).
  return /[",\r\n]/.test(s) || (alone && s === '') ? `"${s.replace(/"/g, '""')}"` : s;
}

const table = fc.integer({ min: 1, max: 4 }).chain((width) =>
  fc.record({
    rows: fc.array(
      fc.array(
        fc.oneof(fc.string({ unit: 'grapheme', maxLength: 6 }), fc.constantFrom('"', ',', '\n', '\r\n', 'a"b', ' ')),
        { minLength: width, maxLength: width },
      ),
      { minLength: 1, maxLength: 12 },
    ),
    eol: fc.constantFrom('\n', '\r\n'),
    finalEol: fc.boolean(),
  }),
);

function write(rows: string[][], eol: string, finalEol: boolean): { text: string; lines: number[] } {
  const lines: number[] = [];
  let text = '';
  rows.forEach((r, i) => {
    lines.push(1 + (text.match(/\n/g)?.length ?? 0));
    text += r.map((f) => field(f, r.length === 1)).join(',') + (i < rows.length - 1 || finalEol ? eol : '');
  });
  return { text, lines };
}

function scan(bytes: Uint8Array, partial = false) {
  const records: string[][] = [];
  const lines: number[] = [];
  scanCsv(bytes, 'file://t.csv', partial, (r, l) => {
    records.push(r);
    lines.push(l);
  });
  return { records, lines };
}

describe('training/data: CSV scanner (RFC 4180 round trip)', () => {
  it('reads back every table written with RFC 4180 quoting, with start lines', () => {
    fc.assert(
      fc.property(table, ({ rows, eol, finalEol }) => {
        const { text, lines } = write(rows, eol, finalEol);
        const got = scan(Buffer.from(text, 'utf8'));
        assert.deepEqual(got.records, rows);
        assert.deepEqual(got.lines, lines);
      }),
      { numRuns: 500 },
    );
  });

  it('a prefix cut at any line break reads back a prefix of the records', () => {
    fc.assert(
      fc.property(table, fc.nat(), ({ rows, eol }, cutAt) => {
        const bytes = Buffer.from(write(rows, eol, true).text, 'utf8');
        const cut = bytes.subarray(0, bytes.lastIndexOf(0x0a, cutAt % bytes.length) + 1);
        const got = scan(cut, true);
        assert.deepEqual(got.records, rows.slice(0, got.records.length));
      }),
      { numRuns: 500 },
    );
  });

  it('names the line of a malformed record', () => {
    assert.throws(
      () => scan(Buffer.from('a,b\n"x\ny",1\n2,"3\n')),
      /^DatasetError: dataset\.path: file:\/\/t\.csv: line 4 opens a quoted field that is never closed$/,
    );
  });
});
