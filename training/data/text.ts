// Helpers for the text formats. They work on the file's bytes, never on one string of the whole file: V8 strings
// stop at about 512 MiB, and a string per field kept for every row would cost many times the file size.
import { isUtf8 } from 'node:buffer';
import { DatasetError } from './errors';
import type { FileDataSpec } from './types';

export interface TextInput {
  spec: FileDataSpec;
  url: string;
  bytes: Uint8Array;
  /** The bytes are a prefix of the file (the quick check before a run starts). */
  partial: boolean;
  maxBytes: number;
}

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The bytes to parse: for a prefix, up to its last line break (the rest is a cut-off line). */
export function textBytes(input: TextInput): Uint8Array {
  let bytes = input.bytes;
  if (input.partial) bytes = bytes.subarray(0, bytes.lastIndexOf(0x0a) + 1);
  const ok = typeof isUtf8 === 'function' ? isUtf8(bytes) : utf8ByDecoder(bytes);
  if (!ok) throw new DatasetError('dataset.path', `${input.url} is not UTF-8 text`);
  return bytes;
}

function utf8ByDecoder(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export function isBlank(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && !(i < 3 && (c === 0xef || c === 0xbb || c === 0xbf)))
      return false;
  }
  return true;
}

/** Where spec.features names a column/field: `dataset.features[i]`, or `dataset.features` for the default list. */
export function featureField(spec: FileDataSpec, name: string): string {
  const i = spec.features?.indexOf(name) ?? -1;
  return i >= 0 ? `dataset.features[${i}]` : 'dataset.features';
}

/** A number beyond float32's range (about 3.4e38): finite as read, Infinity once stored for training. */
export function beyondFloat32(spec: FileDataSpec, kind: string, name: string, where: string): DatasetError {
  return new DatasetError(
    featureField(spec, name),
    `${kind} ${JSON.stringify(name)} at ${where} is beyond float32's range (magnitude above 3.4e38), which training ` +
      'would store as Infinity; scale the data',
  );
}

export function nonNumeric(spec: FileDataSpec, kind: string, name: string, value: string, where: string): DatasetError {
  const what = value === '' ? 'an empty value' : `the non-numeric value ${JSON.stringify(value)}`;
  return new DatasetError(
    featureField(spec, name),
    `${kind} ${JSON.stringify(name)} has ${what} at ${where}; features must be numbers (list the numeric ${kind}s in dataset.features)`,
  );
}

/** Checks spec.features against the available names; returns the feature list (default: all but the label). */
export function chooseFeatures(spec: FileDataSpec, names: string[], kind: string, url: string): string[] {
  const list = `(${kind}s: ${names.join(', ')})`;
  if (!names.includes(spec.label)) {
    throw new DatasetError('dataset.label', `no ${kind} ${JSON.stringify(spec.label)} in ${url} ${list}`);
  }
  const splitColumn = spec.splitColumn;
  if (splitColumn !== undefined && !names.includes(splitColumn)) {
    throw new DatasetError('dataset.splitColumn', `no ${kind} ${JSON.stringify(splitColumn)} in ${url} ${list}`);
  }
  if (spec.features === undefined) {
    const features = names.filter((c) => c !== spec.label && c !== splitColumn);
    if (features.length === 0) throw new DatasetError('dataset.features', `${url} has no ${kind} besides the label`);
    return features;
  }
  spec.features.forEach((f, i) => {
    if (!names.includes(f)) {
      throw new DatasetError(`dataset.features[${i}]`, `no ${kind} ${JSON.stringify(f)} in ${url} ${list}`);
    }
    if (f === splitColumn) {
      throw new DatasetError(`dataset.features[${i}]`, `${JSON.stringify(f)} is the split column, never a feature`);
    }
  });
  return spec.features;
}

/**
 * textBytes(), refusing a file with nothing to read: empty (`emptyWhy` says what the format needs), or a prefix read
 * whose `firstRecord` does not fit in it.
 */
export function nonBlankTextBytes(input: TextInput, firstRecord: string, emptyWhy: string): Uint8Array {
  const bytes = textBytes(input);
  if (!isBlank(bytes)) return bytes;
  if (input.partial && !isBlank(input.bytes)) {
    throw new DatasetError(
      'dataset.path',
      `${input.url}: ${firstRecord} does not fit in the first ${input.bytes.length} bytes`,
    );
  }
  throw new DatasetError('dataset.path', `${input.url} is empty: ${emptyWhy}`);
}
