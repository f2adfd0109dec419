// The one rule for checkpoint storage URLs: the spec validation refuses what the store opener would refuse, so a
// bad URL fails `start` with a message instead of failing the worker's first activity. Pure, no imports.

export type StorageLocation =
  /** `path` as written after file://: relative (to the worker's working directory) or absolute. */
  | { kind: 'file'; path: string }
  /** `prefix` without leading or trailing slashes ('' for the bucket's root). */
  | { kind: 's3'; bucket: string; prefix: string };

export const STORAGE_URL_FORMS = 'file://PATH or s3://BUCKET/PREFIX';

/** A storage URL that cannot be opened. `problem` completes a sentence whose subject is the URL. */
export class StorageUrlError extends Error {
  constructor(
    readonly url: unknown,
    readonly problem: string,
    /** True when the text is not a URL at all (no scheme://). */
    readonly notAUrl = false,
  ) {
    super(`checkpoint storage ${show(url)} ${problem}`);
    this.name = 'StorageUrlError';
  }
}

const show = (v: unknown): string => JSON.stringify(v) ?? String(v);

// C0 and C1 control characters and DEL: never part of a usable path or key, and invisible in messages and logs.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Characters and length a bucket name can have at all: today's S3 rule (3-63 of a-z 0-9 . -) widened to the legacy
// us-east-1 rule (also A-Z and _, up to 255), so an old bucket still opens; the server judges the finer points.
const BUCKET = /^[A-Za-z0-9._-]{3,255}$/;

/** Parses file://PATH or s3://BUCKET/PREFIX (scheme case-insensitive). Throws StorageUrlError. */
export function parseStorageUrl(url: string): StorageLocation {
  if (typeof url !== 'string') throw new StorageUrlError(url, `is not a URL: use ${STORAGE_URL_FORMS}`, true);
  const control = CONTROL.exec(url);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    throw new StorageUrlError(url, `contains a control character (U+${code} at position ${control.index})`);
  }
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/.exec(url);
  if (!m) throw new StorageUrlError(url, `is not a URL: use ${STORAGE_URL_FORMS}`, true);
  const scheme = m[1].toLowerCase();
  const rest = m[2];
  if (scheme === 'file') {
    if (!rest) throw new StorageUrlError(url, 'has no path: use file://PATH or file:///ABSOLUTE/PATH');
    return { kind: 'file', path: rest };
  }
  if (scheme === 's3') {
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
    if (!bucket) throw new StorageUrlError(url, 'has no bucket: use s3://BUCKET/PREFIX');
    if (!BUCKET.test(bucket)) {
      throw new StorageUrlError(
        url,
        `has an invalid bucket name ${show(bucket)}: S3 bucket names are 3 to 63 characters of a-z, 0-9, "." and "-" ` +
          '(older buckets may also have A-Z and "_", up to 255)',
      );
    }
    if (prefix && prefix.split('/').some((p) => p === '' || p === '.' || p === '..')) {
      throw new StorageUrlError(url, `has an empty, "." or ".." segment in its prefix ${show(prefix)}`);
    }
    return { kind: 's3', bucket, prefix };
  }
  throw new StorageUrlError(url, `has unknown scheme ${scheme}:// (supported: file://, s3://)`);
}
