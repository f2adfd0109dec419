// IDX files (the MNIST container): a magic of two zero bytes, a type byte and a dimension count, the dimensions as
// big-endian uint32, then the values big-endian. `path` holds the examples (first dimension = count), the
// dataset's `label` the URL of a second IDX file with one label per example.
import { firstNonFinite } from '../errors';
import { DatasetError } from './errors';
import { checkMemory } from './source';
import { classLabels, type RawTable } from './table';

const TYPES: Record<number, { name: string; size: number; integer: boolean }> = {
  0x08: { name: 'ubyte', size: 1, integer: true },
  0x09: { name: 'sbyte', size: 1, integer: true },
  0x0b: { name: 'int16', size: 2, integer: true },
  0x0c: { name: 'int32', size: 4, integer: true },
  0x0d: { name: 'float32', size: 4, integer: false },
  0x0e: { name: 'float64', size: 8, integer: false },
};

/** Enough bytes for any IDX header (at most 255 dimensions). */
export const IDX_MAX_HEADER_BYTES = 4 + 4 * 255;

export interface IdxHeader {
  type: number;
  dims: number[];
  headerBytes: number;
  count: number;
}

/** Reads and checks the header against the file's total size. */
export function parseIdxHeader(bytes: Uint8Array, totalSize: number, field: string, url: string): IdxHeader {
  if (totalSize === 0) throw new DatasetError(field, `${url} is empty: expected an IDX file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = bytes[2];
  const nd = bytes[3];
  if (bytes.byteLength < 4 || bytes[0] !== 0 || bytes[1] !== 0 || !TYPES[type] || nd === 0) {
    throw new DatasetError(
      field,
      `${url} is not an IDX file (expected the magic 00 00 <type> <dims> with type one of ` +
        `${Object.entries(TYPES)
          .map(([k, t]) => `0x${Number(k).toString(16).padStart(2, '0')} ${t.name}`)
          .join(', ')})`,
    );
  }
  const headerBytes = 4 + 4 * nd;
  if (bytes.byteLength < headerBytes) throw new DatasetError(field, `${url} ends inside its IDX header`);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = headerBytes + count * TYPES[type].size;
  if (totalSize !== expected) {
    throw new DatasetError(
      field,
      `${url} has ${totalSize} bytes, but its header (${TYPES[type].name}, dims ${dims.join('x')}) needs ${expected}`,
    );
  }
  if (dims[0] === 0) throw new DatasetError(field, `${url} holds no examples (first dimension 0)`);
  return { type, dims, headerBytes, count };
}

function values(bytes: Uint8Array, h: IdxHeader): Float32Array {
  const out = new Float32Array(h.count);
  const view = new DataView(bytes.buffer, bytes.byteOffset + h.headerBytes, bytes.byteLength - h.headerBytes);
  const n = h.count;
  switch (h.type) {
    case 0x08:
      out.set(bytes.subarray(h.headerBytes, h.headerBytes + n));
      break;
    case 0x09:
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i);
      break;
    case 0x0b:
      for (let i = 0; i < n; i++) out[i] = view.getInt16(2 * i, false);
      break;
    case 0x0c:
      for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, false);
      break;
    case 0x0d:
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, false);
      break;
    default:
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, false);
  }
  return out;
}

export interface IdxInput {
  url: string;
  bytes: Uint8Array;
  labelUrl: string;
  labelBytes: Uint8Array;
  regression: boolean;
  maxBytes: number;
}

/** Checks both headers (the quick check reads only the first IDX_MAX_HEADER_BYTES of each file). */
export function checkIdxHeaders(
  images: Uint8Array,
  imagesSize: number,
  url: string,
  labels: Uint8Array,
  labelsSize: number,
  labelUrl: string,
): { x: IdxHeader; y: IdxHeader } {
  const x = parseIdxHeader(images, imagesSize, 'dataset.path', url);
  const y = parseIdxHeader(labels, labelsSize, 'dataset.label', labelUrl);
  if (y.dims.length > 2 || (y.dims.length === 2 && y.dims[1] !== 1)) {
    throw new DatasetError('dataset.label', `${labelUrl} has dims ${y.dims.join('x')}; expected one label per example`);
  }
  if (y.dims[0] !== x.dims[0]) {
    throw new DatasetError(
      'dataset.label',
      `${labelUrl} has ${y.dims[0]} labels, but ${url} has ${x.dims[0]} examples`,
    );
  }
  return { x, y };
}

export function readIdxTable(input: IdxInput): RawTable {
  const { url, labelUrl } = input;
  const h = checkIdxHeaders(
    input.bytes,
    input.bytes.byteLength,
    url,
    input.labelBytes,
    input.labelBytes.byteLength,
    labelUrl,
  );
  checkMemory('dataset.path', url, h.x.count, input.maxBytes);
  const n = h.x.dims[0];
  const featureShape = h.x.dims.length > 1 ? h.x.dims.slice(1) : [1];
  const y = values(input.labelBytes, h.y);
  if (input.regression) {
    const bad = firstNonFinite(y);
    if (bad >= 0)
      throw new DatasetError('dataset.label', `${labelUrl}: label ${bad} is ${y[bad]}, not a finite number`);
  }
  const x = values(input.bytes, h.x);
  const bad = firstNonFinite(x);
  if (bad >= 0) {
    const size = h.x.count / n;
    throw new DatasetError(
      'dataset.path',
      `${url}: example ${Math.floor(bad / size)}, value ${bad % size} is not a finite number (NaN or infinite in the ` +
        `${h.x.type === 0x0e ? 'float64' : 'float32'} data, or beyond float32's range); training needs finite values`,
    );
  }
  return {
    featureShape,
    featureNames: null,
    x,
    n,
    labels: input.regression ? { kind: 'values', values: y } : classLabels(Array.from(y, (v) => String(v))),
  };
}
