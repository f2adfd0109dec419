// The one table of storage URL schemes and their parsing: the spec validation refuses what the store opener would
// refuse, so a bad URL fails `start` with a message instead of failing the worker's first activity. Pure, no
// imports: spec/ (and so workflows/) import this module; the backends that open a location are in storage/index.ts.
import { DurableTrainError } from '../spec/errors';

/** A parsed storage URL. `prefix` has no leading or trailing slashes ('' for the bucket's root). */
export type StorageLocation =
  /** `path` as written after file://: relative (to the worker's working directory) or absolute. */
  | { kind: 'file'; path: string }
  | { kind: 's3'; bucket: string; prefix: string }
  | { kind: 'gs'; bucket: string; prefix: string }
  /** `account` when the URL names it (the https:// form); else the credentials' account. */
  | { kind: 'az'; account?: string; container: string; prefix: string };

/** The backend a location is opened with. */
export type StorageKind = StorageLocation['kind'];

/** A storage URL that cannot be opened. `problem` completes a sentence whose subject is the URL. */
export class StorageUrlError extends DurableTrainError {
  readonly code = 'invalid' as const;

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

interface SchemeEntry {
  /** How a store URL of this scheme is written. */
  form: string;
  /** How an object (a dataset file, a model file) of this scheme is written, and what such a URL must name. */
  objectForm: string;
  objectNeeds: string;
  /** Parses what follows `scheme://`; throws StorageUrlError. */
  parse(rest: string, url: string): StorageLocation;
}

/** Splits BUCKET/PREFIX, checking the bucket against `bucketRule` and the prefix for empty, "." and ".." segments. */
function bucketAndPrefix(
  rest: string,
  url: string,
  what: { noun: string; form: string; rule: RegExp; ruleText: string },
): { bucket: string; prefix: string } {
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  if (!bucket) throw new StorageUrlError(url, `has no ${what.noun}: use ${what.form}`);
  if (!what.rule.test(bucket)) {
    throw new StorageUrlError(url, `has an invalid ${what.noun} name ${show(bucket)}: ${what.ruleText}`);
  }
  if (prefix && prefix.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new StorageUrlError(url, `has an empty, "." or ".." segment in its prefix ${show(prefix)}`);
  }
  return { bucket, prefix };
}

// Google Cloud Storage bucket names: 3-63 characters of a-z 0-9 - _ . (up to 222 with dots), starting and ending
// with a letter or digit.
const GCS_BUCKET = /^(?=.{3,222}$)[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$/;
const GCS_RULE =
  'Cloud Storage bucket names are 3 to 63 characters of a-z, 0-9, "-", "_" and "." (up to 222 with dots)';
// Azure container names: 3-63 of a-z 0-9 and single hyphens, starting and ending with a letter or digit.
const AZ_CONTAINER = /^(?=.{3,63}$)[a-z0-9](?:-?[a-z0-9])*$/;
const AZ_RULE =
  'Azure container names are 3 to 63 characters of a-z, 0-9 and single "-", starting with a letter or digit';
const AZ_HOST = /^([a-z0-9]{3,24})\.blob\.core\.windows\.net$/;

/**
 * Every scheme a storage URL may have, in the order messages list them. A new backend adds its entry here (and its
 * opener in storage/index.ts).
 */
export const SCHEMES = {
  file: {
    form: 'file://PATH',
    objectForm: 'file://PATH',
    objectNeeds: 'a path',
    parse(rest, url) {
      if (!rest) throw new StorageUrlError(url, 'has no path: use file://PATH or file:///ABSOLUTE/PATH');
      return { kind: 'file', path: rest };
    },
  },
  s3: {
    form: 's3://BUCKET/PREFIX',
    objectForm: 's3://BUCKET/KEY',
    objectNeeds: 'a bucket and a key',
    parse(rest, url) {
      // Today's S3 rule (3-63 of a-z 0-9 . -) widened to the legacy us-east-1 rule (also A-Z and _, up to 255), so an
      // old bucket still opens; the server judges the finer points.
      const where = bucketAndPrefix(rest, url, {
        noun: 'bucket',
        form: 's3://BUCKET/PREFIX',
        rule: /^[A-Za-z0-9._-]{3,255}$/,
        ruleText:
          'S3 bucket names are 3 to 63 characters of a-z, 0-9, "." and "-" (older buckets may also have A-Z and "_", up to 255)',
      });
      return { kind: 's3', ...where };
    },
  },
  gs: {
    form: 'gs://BUCKET/PREFIX',
    objectForm: 'gs://BUCKET/NAME',
    objectNeeds: 'a bucket and an object name',
    parse(rest, url) {
      const where = bucketAndPrefix(rest, url, {
        noun: 'bucket',
        form: 'gs://BUCKET/PREFIX',
        rule: GCS_BUCKET,
        ruleText: GCS_RULE,
      });
      return { kind: 'gs', ...where };
    },
  },
  az: {
    form: 'az://CONTAINER/PREFIX',
    objectForm: 'az://CONTAINER/BLOB',
    objectNeeds: 'a container and a blob name',
    parse(rest, url) {
      const { bucket: container, prefix } = bucketAndPrefix(rest, url, {
        noun: 'container',
        form: 'az://CONTAINER/PREFIX',
        rule: AZ_CONTAINER,
        ruleText: AZ_RULE,
      });
      return { kind: 'az', container, prefix };
    },
  },
  https: {
    form: 'https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX',
    objectForm: 'https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB',
    objectNeeds: 'a container and a blob name',
    parse(rest, url) {
      const slash = rest.indexOf('/');
      const host = (slash < 0 ? rest : rest.slice(0, slash)).toLowerCase();
      const account = AZ_HOST.exec(host)?.[1];
      if (!account) {
        throw new StorageUrlError(
          url,
          `is not an Azure Blob Storage URL: https:// storage must be https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX`,
        );
      }
      const { bucket: container, prefix } = bucketAndPrefix(slash < 0 ? '' : rest.slice(slash + 1), url, {
        noun: 'container',
        form: 'https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX',
        rule: AZ_CONTAINER,
        ruleText: AZ_RULE,
      });
      return { kind: 'az', account, container, prefix };
    },
  },
} satisfies Record<string, SchemeEntry>;

type StorageScheme = keyof typeof SCHEMES;
const SCHEME_NAMES = Object.keys(SCHEMES) as StorageScheme[];

/** The forms a storage URL may take, for messages: 'file://PATH, s3://BUCKET/PREFIX, ... or https://...'. */
export const STORAGE_URL_FORMS = listForms((s) => SCHEMES[s].form);

/** The forms an object URL may take, for messages: 'file://PATH, s3://BUCKET/KEY, ...'. */
export const OBJECT_URL_FORMS = listForms((s) => SCHEMES[s].objectForm);

function listForms(form: (s: StorageScheme) => string): string {
  const all = SCHEME_NAMES.map(form);
  return all.length < 2 ? all.join('') : `${all.slice(0, -1).join(', ')} or ${all[all.length - 1]}`;
}

/** Parses a storage URL of any scheme in SCHEMES (scheme case-insensitive). Throws StorageUrlError. */
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
  const entry: SchemeEntry | undefined = Object.prototype.hasOwnProperty.call(SCHEMES, scheme)
    ? SCHEMES[scheme as StorageScheme]
    : undefined;
  if (!entry) {
    const supported = SCHEME_NAMES.map((s) => `${s}://`).join(', ');
    throw new StorageUrlError(url, `has unknown scheme ${scheme}:// (supported: ${supported})`);
  }
  return entry.parse(m[2], url);
}

/**
 * An object's location (a dataset or model file): a storage location whose prefix names the object itself (the key).
 * Throws StorageUrlError, also when the URL names a bucket but no object in it.
 */
export function parseObjectUrl(url: string): StorageLocation {
  const loc = parseStorageUrl(url);
  if (loc.kind !== 'file' && !loc.prefix) {
    const entry: SchemeEntry = loc.kind === 'az' && loc.account ? SCHEMES.https : SCHEMES[loc.kind];
    throw new StorageUrlError(url, `needs ${entry.objectNeeds}: use ${entry.objectForm}`);
  }
  return loc;
}
