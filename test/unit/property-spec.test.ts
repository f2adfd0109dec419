// Untrusted specs and storage URLs, generated (fast-check): every input either validates or is refused with a
// SpecError / StorageUrlError whose message names the field; never a TypeError or RangeError from inside, never a
// hang (each property runs a bounded number of small inputs, so a hang fails the test on its timeout).
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { mergeSpec, parseStorageUrl, SpecError, StorageUrlError, validateSpec, type RunSpec } from '../../spec';
import { LAYER_TYPES } from '../../spec/layers';
import { canonicalJson } from '../../checkpoint';

const base = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 600 },
  epochs: 2,
  batchSize: 50,
  optimizer: { name: 'adam', learningRate: 0.001 },
  schedule: { name: 'step', every: 10, factor: 0.5 },
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 3, keepBest: { k: 1, metric: 'loss' } },
  resume: { allowDatasetChange: false },
  freeze: ['dense1'],
};

/** Every field path of the base spec (and of its other shapes), where a generated value is put. */
const PATHS: string[][] = [
  ['model'],
  ['model', 'layers'],
  ['model', 'layers', '0'],
  ['model', 'layers', '0', 'units'],
  ['model', 'inputShape'],
  ['model', 'tfjs'],
  ['model', 'registered'],
  ['dataset'],
  ['dataset', 'name'],
  ['dataset', 'trainLimit'],
  ['dataset', 'testLimit'],
  ['dataset', 'format'],
  ['dataset', 'path'],
  ['dataset', 'label'],
  ['dataset', 'features'],
  ['epochs'],
  ['batchSize'],
  ['chunkSteps'],
  ['chunkSeconds'],
  ['seed'],
  ['optimizer'],
  ['optimizer', 'name'],
  ['optimizer', 'learningRate'],
  ['optimizer', 'beta1'],
  ['optimizer', 'momentum'],
  ['schedule'],
  ['schedule', 'name'],
  ['schedule', 'every'],
  ['schedule', 'factor'],
  ['augment'],
  ['augment', 'shift'],
  ['dropout'],
  ['checkpoint'],
  ['checkpoint', 'storage'],
  ['checkpoint', 'everySeconds'],
  ['checkpoint', 'keepLatest'],
  ['checkpoint', 'keepBest'],
  ['checkpoint', 'keepBest', 'metric'],
  ['checkpoint', 'keepEverySteps'],
  ['resume'],
  ['resume', 'allowBackendChange'],
  ['freeze'],
  ['freeze', '0'],
  ['task'],
  ['loss'],
  ['$schema'],
  ['__proto__'],
  ['constructor'],
  ['unknownField'],
];

/** Fields a cross-field rule may name when another field changed (e.g. batchSize > dataset.trainLimit). */
const CROSS_FIELD = /^(batchSize|loss|dropout|freeze(\[\d+\])?|schedule\.metric|checkpoint\.keepBest\.metric)$/;

// Hostile values: JSON of every kind, plus the numbers and strings that break naive code.
const hostile = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    null,
    -0,
    1e308,
    -1e308,
    2 ** 53,
    2 ** 40,
    Number.MAX_SAFE_INTEGER + 2,
    5e-324,
    '',
    '../../etc/passwd',
    'file://../../../../etc',
    's3://b/../x',
    '\u0000',
    'a\u202eb',
    '__proto__',
    'constructor',
    'toString',
    [],
    {},
    { __proto__: null },
    [[[[[]]]]],
    'x'.repeat(100_000),
  ),
);

const fieldName = (p: string[]) => p.map((k, i) => (/^\d+$/.test(k) ? `[${k}]` : i ? `.${k}` : k)).join('');

function setPath(root: unknown, p: string[], value: unknown, remove: boolean): unknown {
  const copy = JSON.parse(JSON.stringify(root)) as Record<string, unknown>;
  let cur: Record<string, unknown> = copy;
  for (const k of p.slice(0, -1)) {
    const next = cur[k];
    if (typeof next !== 'object' || next === null) {
      // Create the missing parent as an object (defineProperty: "__proto__" stays a plain key).
      Object.defineProperty(cur, k, { value: {}, enumerable: true, writable: true, configurable: true });
    }
    cur = cur[k] as Record<string, unknown>;
  }
  const last = p[p.length - 1];
  if (remove) delete cur[last];
  else Object.defineProperty(cur, last, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

/** validateSpec's answer, with the property that it is a spec or a SpecError naming a field. */
function judge(input: unknown): { spec: RunSpec } | { err: SpecError } {
  let spec: RunSpec;
  try {
    spec = validateSpec(input);
  } catch (err) {
    assert.ok(err instanceof SpecError, `not a SpecError: ${(err as Error)?.stack ?? String(err)}`);
    assert.ok(err.field.length > 0, err.message);
    assert.ok(err.message.startsWith(`invalid spec: ${err.field}: `), err.message);
    assert.ok(err.message.length < 2_000, `message of ${err.message.length} characters`);
    return { err };
  }
  // Whatever validates survives JSON and validates again to itself (what the workflow and the worker receive).
  // (Compared as canonical JSON: -0 travels as 0, which means the same; key order does not matter.)
  const json = canonicalJson(spec);
  assert.equal(canonicalJson(validateSpec(JSON.parse(json))), json);
  return { spec };
}

describe('property: untrusted specs', function () {
  this.timeout(120_000);

  it('the base spec is valid', function () {
    assert.ok('spec' in judge(base));
  });

  it('any JSON value is a spec or a SpecError naming a field', function () {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        judge(v);
      }),
      { numRuns: 500 },
    );
  });

  it('any JSON object with spec-like keys is a spec or a SpecError', function () {
    const keys = fc.constantFrom(...new Set(PATHS.map((p) => p[0])));
    fc.assert(
      fc.property(fc.dictionary(keys, hostile, { maxKeys: 12 }), (v) => {
        judge(v);
      }),
      { numRuns: 500 },
    );
  });

  it('one field of a valid spec replaced or removed: refused naming that field (or a rule across fields)', function () {
    fc.assert(
      fc.property(fc.constantFrom(...PATHS), hostile, fc.boolean(), (p, value, remove) => {
        const r = judge(setPath(base, p, value, remove));
        if ('spec' in r) return;
        const field = r.err.field;
        // A parent that was not an object in the base was created: the error may name anything inside it.
        let depth = 1;
        for (let v: unknown = base; depth < p.length; depth++) {
          v = (v as Record<string, unknown>)[p[depth - 1]];
          if (typeof v !== 'object' || v === null) break;
        }
        const changed = fieldName(p.slice(0, depth));
        const related =
          field === changed ||
          field.startsWith(`${changed}.`) ||
          field.startsWith(`${changed}[`) ||
          changed.startsWith(`${field}.`) ||
          changed.startsWith(`${field}[`) ||
          CROSS_FIELD.test(field);
        assert.ok(related, `changed ${changed}, error names ${field}: ${r.err.message}`);
      }),
      { numRuns: 1500 },
    );
  });

  it('layer lists with hostile options are specs or SpecErrors naming the layer', function () {
    const layer = fc.record(
      {
        type: fc.oneof(fc.constantFrom(...LAYER_TYPES), fc.string()),
        units: hostile,
        filters: hostile,
        kernelSize: hostile,
        rate: hostile,
        activation: hostile,
        name: hostile,
        poolSize: hostile,
        strides: hostile,
        padding: hostile,
        targetShape: hostile,
        inputShape: hostile,
      },
      { requiredKeys: ['type'] },
    );
    fc.assert(
      fc.property(fc.array(layer, { minLength: 1, maxLength: 4 }), hostile, (layers, inputShape) => {
        const r = judge(mergeSpec(base, { model: { layers, inputShape }, freeze: [] }));
        if ('err' in r) assert.match(r.err.field, /^(model|freeze|dropout|batchSize)/, r.err.message);
      }),
      { numRuns: 800 },
    );
  });
});

describe('property: untrusted storage URLs', function () {
  it('any string is a location or a StorageUrlError; what parses is safe to open', function () {
    const pathy = fc.array(
      fc.oneof(fc.constantFrom('..', '.', '', '/', '\\', '\u0000', '%2e%2e', '~', 'é', '\u202e'), fc.string()),
      { maxLength: 6 },
    );
    const url = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc
        .tuple(
          fc.constantFrom(
            'file://',
            's3://',
            'S3://',
            'FILE://',
            'gs://',
            'az://',
            'https://acct.blob.core.windows.net/',
            's3:/',
            '',
          ),
          pathy,
        )
        .map(([scheme, parts]) => scheme + parts.join('/')),
    );
    fc.assert(
      fc.property(url, (u) => {
        let loc;
        try {
          loc = parseStorageUrl(u);
        } catch (err) {
          assert.ok(err instanceof StorageUrlError, `not a StorageUrlError: ${String(err)}`);
          assert.match(err.message, /^checkpoint storage /);
          return;
        }
        // eslint-disable-next-line no-control-regex
        assert.doesNotMatch(u, /[\u0000-\u001f\u007f-\u009f]/, 'control characters never pass');
        if (loc.kind !== 'file') {
          assert.match(loc.kind === 'az' ? loc.container : loc.bucket, /^[A-Za-z0-9._-]{3,255}$/);
          if (loc.prefix)
            for (const seg of loc.prefix.split('/')) assert.ok(seg !== '' && seg !== '.' && seg !== '..', u);
        } else {
          assert.ok(loc.path.length > 0);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('a spec with any storage URL is valid exactly when the URL parses', function () {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('s3://ab', 's3://abc/..', 'file://')), (u) => {
        let parses = true;
        try {
          parseStorageUrl(u);
        } catch {
          parses = false;
        }
        const r = judge(mergeSpec(base, { checkpoint: { storage: u } }));
        assert.equal('spec' in r, parses, u);
        if ('err' in r) assert.equal(r.err.field, 'checkpoint.storage');
      }),
      { numRuns: 1000 },
    );
  });
});
