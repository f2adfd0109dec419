// The one spec schema: its messages (field named), its defaults, round trips, the published JSON Schema, and the
// storage URL rule shared with the store opener.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import {
  AUGMENT_SHIFT_MAX,
  LEARNING_RATE_MIN,
  SpecError,
  StorageUrlError,
  learningRateProblem,
  mergeSpec,
  parseStorageUrl,
  specJsonSchema,
  stepCounts,
  validateSpec,
  type RunSpec,
} from '../../spec';
import * as legacyValidate from '../../spec/validate';

const repoRoot = path.resolve(__dirname, '..', '..', '..');

const minimal = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist' },
  epochs: 2,
  batchSize: 50,
  optimizer: { name: 'sgd', learningRate: 0.1 },
  checkpoint: { storage: 'file://.data/checkpoints' },
};

/** `minimal` with `patch` merged in (objects merge), as a user would edit the file. */
const withSpec = (patch: object): unknown => mergeSpec(minimal, patch);

function refusal(input: unknown): SpecError {
  try {
    validateSpec(input);
  } catch (err) {
    assert.ok(err instanceof SpecError, `expected a SpecError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(input)} to be refused`);
}

describe('spec schema: defaults', () => {
  it('fills in every default of a minimal spec', () => {
    assert.deepEqual(validateSpec(minimal), {
      model: 'mnist-mlp',
      dataset: { name: 'mnist', trainLimit: 60000, testLimit: 10000 },
      epochs: 2,
      batchSize: 50,
      chunkSteps: 10_000,
      chunkSeconds: 60,
      seed: 42,
      optimizer: { name: 'sgd', learningRate: 0.1 },
      schedule: { name: 'constant' },
      augment: { shift: 0 },
      dropout: 0,
      checkpoint: { storage: 'file://.data/checkpoints', everySeconds: 0, keepLatest: 5 },
    });
  });

  it('fills in the defaults that depend on the model, the optimizer and the schedule', () => {
    assert.equal(validateSpec(withSpec({ model: 'mnist-cnn' })).dropout, 0.25);
    assert.equal(validateSpec(withSpec({ model: 'mnist-cnn', dropout: 0 })).dropout, 0);
    assert.deepEqual(validateSpec(withSpec({ optimizer: { name: 'momentum', learningRate: 0.1 } })).optimizer, {
      name: 'momentum',
      learningRate: 0.1,
      momentum: 0.9,
    });
    assert.deepEqual(
      validateSpec(withSpec({ optimizer: { name: 'adam', learningRate: 0.1, beta2: 0.99 } })).optimizer,
      {
        name: 'adam',
        learningRate: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        epsilon: 1e-7,
      },
    );
    const schedule = (s: object) => validateSpec(withSpec({ schedule: s })).schedule;
    assert.deepEqual(schedule({ name: 'cosine' }), { name: 'cosine', warmupSteps: 0, minLearningRate: 0 });
    assert.deepEqual(schedule({ name: 'plateau', patience: 3 }), {
      name: 'plateau',
      metric: 'loss',
      patience: 3,
      factor: 0.5,
      minLearningRate: 0,
    });
    assert.deepEqual(schedule({ name: 'step', every: 100, factor: 0.5 }), { name: 'step', every: 100, factor: 0.5 });
    assert.deepEqual(validateSpec(withSpec({ resume: {} })).resume, {
      allowDatasetChange: false,
      allowBackendChange: false,
    });
    assert.deepEqual(validateSpec(withSpec({ augment: {} })).augment, { shift: 0 });
  });

  it('sorts freeze, drops an empty freeze and an editor $schema', () => {
    const cnn = validateSpec(withSpec({ model: 'mnist-cnn', freeze: ['dense1', 'conv2', 'conv1'] }));
    assert.deepEqual(cnn.freeze, ['conv1', 'conv2', 'dense1']);
    assert.ok(!('freeze' in validateSpec(withSpec({ freeze: [] }))));
    assert.ok(!('$schema' in validateSpec(withSpec({ $schema: './docs/spec.schema.json' }))));
  });

  it('keeps optional fields absent when not given (keepBest, keepEverySteps, resume, freeze)', () => {
    const v = validateSpec(minimal);
    for (const k of ['resume', 'freeze']) assert.ok(!(k in v), k);
    for (const k of ['keepBest', 'keepEverySteps']) assert.ok(!(k in v.checkpoint), k);
  });

  it('lets code build a RunSpec without the defaulted fields (the type keeps them optional)', () => {
    const spec: RunSpec = {
      model: 'mnist-cnn',
      dataset: { name: 'mnist' },
      epochs: 1,
      batchSize: 8,
      chunkSteps: 10,
      chunkSeconds: 60,
      seed: 1,
      optimizer: { name: 'adam', learningRate: 1e-3 },
      checkpoint: { storage: 'file://x' },
    };
    assert.equal(validateSpec(spec).dropout, 0.25);
    assert.deepEqual(stepCounts(spec), { stepsPerEpoch: 7500, totalSteps: 7500 });
  });
});

describe('spec schema: round trips', () => {
  const full = {
    model: 'mnist-cnn',
    dataset: { name: 'mnist', trainLimit: 600, testLimit: 100 },
    epochs: 3,
    batchSize: 32,
    chunkSteps: 7,
    chunkSeconds: 5,
    seed: 0,
    optimizer: { name: 'adam', learningRate: 0.003, beta1: 0.8, beta2: 0.99, epsilon: 1e-6 },
    schedule: { name: 'plateau', metric: 'accuracy', patience: 2, factor: 0.25, minLearningRate: 1e-5 },
    augment: { shift: AUGMENT_SHIFT_MAX },
    dropout: 0.5,
    checkpoint: {
      storage: 's3://my-bucket/runs/a',
      everySeconds: 30,
      keepLatest: 3,
      keepBest: { k: 2, metric: 'accuracy' },
      keepEverySteps: 100,
    },
    resume: { allowDatasetChange: true, allowBackendChange: false },
    freeze: ['conv1', 'conv2'],
  };

  it('returns a complete valid spec unchanged, and validating twice changes nothing', () => {
    assert.deepEqual(validateSpec(full), full);
    const once = validateSpec(minimal);
    assert.deepEqual(validateSpec(once), once);
    assert.deepEqual(validateSpec(JSON.parse(JSON.stringify(once))), once);
  });

  it('is idempotent and JSON-stable for generated valid specs', () => {
    const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
    const arb = fc.record({
      model: fc.constantFrom('mnist-mlp', 'mnist-cnn'),
      trainLimit: opt(fc.integer({ min: 64, max: 60000 })),
      batchSize: fc.integer({ min: 1, max: 64 }),
      optimizer: fc.oneof(
        fc.record({ name: fc.constant('sgd'), learningRate: fc.double({ min: 1e-6, max: 10, noNaN: true }) }),
        fc.record(
          {
            name: fc.constant('momentum'),
            learningRate: fc.constant(0.1),
            momentum: fc.double({ min: 0, max: 0.99, noNaN: true }),
          },
          { requiredKeys: ['name', 'learningRate'] },
        ),
        fc.record(
          {
            name: fc.constant('adam'),
            learningRate: fc.constant(0.001),
            beta1: fc.double({ min: 0, max: 0.99, noNaN: true }),
          },
          { requiredKeys: ['name', 'learningRate'] },
        ),
      ),
      schedule: opt(
        fc.oneof(
          fc.constant({ name: 'constant' }),
          fc.record({ name: fc.constant('step'), every: fc.integer({ min: 1, max: 1000 }), factor: fc.constant(0.5) }),
          fc.record({ name: fc.constant('cosine'), warmupSteps: fc.nat(100) }, { requiredKeys: ['name'] }),
          fc.record({ name: fc.constant('plateau'), patience: fc.nat(5) }, { requiredKeys: ['name'] }),
        ),
      ),
      shift: opt(fc.integer({ min: 0, max: AUGMENT_SHIFT_MAX })),
      keepLatest: opt(fc.integer({ min: 1, max: 10_000 })),
      freeze: opt(fc.subarray(['dense2', 'dense1'], { maxLength: 1 })),
    });
    fc.assert(
      fc.property(arb, (g) => {
        const input = withSpec({
          model: g.model,
          dataset: { trainLimit: g.trainLimit },
          batchSize: g.batchSize,
          optimizer: g.optimizer,
          ...(g.schedule ? { schedule: g.schedule } : {}),
          ...(g.shift !== undefined ? { augment: { shift: g.shift } } : {}),
          checkpoint: { keepLatest: g.keepLatest },
          freeze: g.freeze,
        });
        const once = validateSpec(JSON.parse(JSON.stringify(input)));
        assert.deepEqual(validateSpec(once), once);
        assert.deepEqual(validateSpec(JSON.parse(JSON.stringify(once))), once);
      }),
      { numRuns: 300, seed: 17 },
    );
  });
});

describe('spec schema: messages name the field', () => {
  const cases: Array<[string, unknown, string, string]> = [
    // [what, input, field, message]
    ['not an object', [], '(root)', 'the spec must be a JSON object'],
    ['null', null, '(root)', 'the spec must be a JSON object'],
    ['nothing', undefined, '(root)', 'the spec must be a JSON object'],
    [
      'unknown model',
      withSpec({ model: 'resnet-9000' }),
      'model',
      'unknown value "resnet-9000" (one of: mnist-mlp, mnist-cnn, or { "layers": [...] })',
    ],
    [
      'missing model',
      { ...minimal, model: undefined },
      'model',
      'missing required field (one of: mnist-mlp, mnist-cnn, or { "layers": [...] })',
    ],
    [
      'fashion-mnist (cannot load)',
      withSpec({ dataset: { name: 'fashion-mnist' } }),
      'dataset.name',
      'unknown value "fashion-mnist" (one of: mnist, iris)',
    ],
    ['dataset not an object', withSpec({ dataset: 3 }), 'dataset', 'must be an object, got 3'],
    [
      'trainLimit too large',
      withSpec({ dataset: { trainLimit: 60001 } }),
      'dataset.trainLimit',
      'must be <= 60000, got 60001',
    ],
    ['testLimit zero', withSpec({ dataset: { testLimit: 0 } }), 'dataset.testLimit', 'must be >= 1, got 0'],
    [
      'unknown dataset field',
      withSpec({ dataset: { limit: 5 } }),
      'dataset.limit',
      'unknown field (allowed: name, trainLimit, testLimit, validationFraction, normalizeFrom)',
    ],
    ['missing epochs', { ...minimal, epochs: undefined }, 'epochs', 'missing required field'],
    ['fractional epochs', withSpec({ epochs: 1.5 }), 'epochs', 'must be an integer, got 1.5'],
    ['epochs as a string', withSpec({ epochs: '3' }), 'epochs', 'must be a number, got "3"'],
    [
      '1e400 (Infinity after JSON.parse)',
      withSpec(JSON.parse('{"epochs": 1e400}')),
      'epochs',
      'must be a finite number, got Infinity',
    ],
    [
      'null number (1e400 after a JSON round trip)',
      withSpec({ epochs: null }),
      'epochs',
      'must be a finite number, got null',
    ],
    [
      'batchSize over trainLimit',
      withSpec({ dataset: { trainLimit: 100 }, batchSize: 101 }),
      'batchSize',
      'must be <= dataset.trainLimit (100), got 101',
    ],
    ['zero chunkSeconds', withSpec({ chunkSeconds: 0 }), 'chunkSeconds', 'must be >= 1, got 0'],
    ['seed too large', withSpec({ seed: 2 ** 32 }), 'seed', 'must be <= 4294967295, got 4294967296'],
    [
      'negative learning rate',
      withSpec({ optimizer: { learningRate: -0.1 } }),
      'optimizer.learningRate',
      'must be > 0, got -0.1',
    ],
    [
      'learning rate zero in float32',
      withSpec({ optimizer: { learningRate: 1e-320 } }),
      'optimizer.learningRate',
      `must be >= ${LEARNING_RATE_MIN} (the smallest normal float32; training computes in float32), got 1e-320`,
    ],
    [
      'unknown optimizer',
      withSpec({ optimizer: { name: 'rmsprop', learningRate: 0.1 } }),
      'optimizer.name',
      'unknown value "rmsprop" (one of: sgd, momentum, adam)',
    ],
    [
      'momentum on sgd',
      withSpec({ optimizer: { momentum: 0.9 } }),
      'optimizer.momentum',
      'only applies to the momentum optimizer',
    ],
    [
      'beta2 on momentum',
      withSpec({ optimizer: { name: 'momentum', learningRate: 0.1, beta2: 0.9 } }),
      'optimizer.beta2',
      'only applies to the adam optimizer',
    ],
    [
      'zero epsilon',
      withSpec({ optimizer: { name: 'adam', learningRate: 0.1, epsilon: 0 } }),
      'optimizer.epsilon',
      'must be > 0, got 0',
    ],
    [
      'unknown schedule',
      withSpec({ schedule: { name: 'warm' } }),
      'schedule.name',
      'unknown value "warm" (one of: constant, step, cosine, plateau)',
    ],
    [
      'schedule without name',
      withSpec({ schedule: {} }),
      'schedule.name',
      'missing required field (one of: constant, step, cosine, plateau)',
    ],
    ['schedule not an object', withSpec({ schedule: 'cosine' }), 'schedule', 'must be an object, got "cosine"'],
    [
      'step without every',
      withSpec({ schedule: { name: 'step', factor: 0.5 } }),
      'schedule.every',
      'missing required field',
    ],
    [
      'field of another schedule',
      withSpec({ schedule: { name: 'cosine', every: 3 } }),
      'schedule.every',
      'unknown field (allowed: name, warmupSteps, minLearningRate)',
    ],
    [
      'step factor above 1',
      withSpec({ schedule: { name: 'step', every: 5, factor: 2 } }),
      'schedule.factor',
      'must be <= 1, got 2',
    ],
    [
      'plateau metric',
      withSpec({ schedule: { name: 'plateau', metric: 'f1' } }),
      'schedule.metric',
      'unknown value "f1" (one of: accuracy, loss)',
    ],
    [
      'shift above the one cap',
      withSpec({ augment: { shift: AUGMENT_SHIFT_MAX + 1 } }),
      'augment.shift',
      `must be <= ${AUGMENT_SHIFT_MAX}, got ${AUGMENT_SHIFT_MAX + 1}`,
    ],
    ['dropout too high', withSpec({ dropout: 0.99 }), 'dropout', 'must be <= 0.95, got 0.99'],
    [
      'storage a plain path',
      withSpec({ checkpoint: { storage: '/tmp/x' } }),
      'checkpoint.storage',
      'must be file://PATH, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX or https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX, got "/tmp/x"',
    ],
    [
      'storage not a string',
      withSpec({ checkpoint: { storage: 3 } }),
      'checkpoint.storage',
      'must be file://PATH, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX or https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX, got 3',
    ],
    ['storage missing', { ...minimal, checkpoint: {} }, 'checkpoint.storage', 'missing required field'],
    [
      's3 without bucket',
      withSpec({ checkpoint: { storage: 's3:///x' } }),
      'checkpoint.storage',
      '"s3:///x" has no bucket: use s3://BUCKET/PREFIX',
    ],
    [
      's3 with nothing',
      withSpec({ checkpoint: { storage: 's3://' } }),
      'checkpoint.storage',
      '"s3://" has no bucket: use s3://BUCKET/PREFIX',
    ],
    [
      'empty file path',
      withSpec({ checkpoint: { storage: 'file://' } }),
      'checkpoint.storage',
      '"file://" has no path: use file://PATH or file:///ABSOLUTE/PATH',
    ],
    [
      'unknown scheme',
      withSpec({ checkpoint: { storage: 'ftp://b/p' } }),
      'checkpoint.storage',
      '"ftp://b/p" has unknown scheme ftp:// (supported: file://, s3://, gs://, az://, https://)',
    ],
    [
      'control character',
      withSpec({ checkpoint: { storage: 'file://a\nb' } }),
      'checkpoint.storage',
      '"file://a\\nb" contains a control character (U+000A at position 8)',
    ],
    [
      'keepLatest 1e300',
      withSpec({ checkpoint: { keepLatest: 1e300 } }),
      'checkpoint.keepLatest',
      'must be <= 10000, got 1e+300',
    ],
    [
      'keepLatest 1e400',
      withSpec(JSON.parse('{"checkpoint": {"keepLatest": 1e400}}')),
      'checkpoint.keepLatest',
      'must be a finite number, got Infinity',
    ],
    [
      'keepBest without metric',
      withSpec({ checkpoint: { keepBest: { k: 2 } } }),
      'checkpoint.keepBest.metric',
      'missing required field (one of: loss, accuracy, auc, precision, recall, f1)',
    ],
    [
      'keepEverySteps huge',
      withSpec({ checkpoint: { keepEverySteps: 1e12 } }),
      'checkpoint.keepEverySteps',
      'must be <= 1000000000, got 1000000000000',
    ],
    [
      'unknown checkpoint field',
      withSpec({ checkpoint: { keep: 1 } }),
      'checkpoint.keep',
      'unknown field (allowed: storage, everySeconds, keepLatest, keepBest, keepEverySteps, retentionVerify)',
    ],
    [
      'resume not boolean',
      withSpec({ resume: { allowBackendChange: 'yes' } }),
      'resume.allowBackendChange',
      'must be true or false, got "yes"',
    ],
    [
      'freeze a layer of another model',
      withSpec({ freeze: ['conv1'] }),
      'freeze[0]',
      'unknown layer "conv1" for mnist-mlp (layers: dense1, dense2)',
    ],
    ['freeze a duplicate', withSpec({ freeze: ['dense1', 'dense1'] }), 'freeze[1]', 'duplicate layer dense1'],
    [
      'freeze every layer',
      withSpec({ freeze: ['dense2', 'dense1'] }),
      'freeze',
      'freezes every layer: nothing would train',
    ],
    ['freeze not a list', withSpec({ freeze: 'dense1' }), 'freeze', 'must be a list of layer names, got "dense1"'],
    ['freeze a number', withSpec({ freeze: [1] }), 'freeze[0]', 'must be a layer name, got 1'],
  ];
  for (const [what, input, field, message] of cases) {
    it(`${what}: ${field}`, () => {
      const err = refusal(input);
      assert.equal(err.field, field);
      assert.equal(err.message, `invalid spec: ${field}: ${message}`);
    });
  }

  it('names an unknown field first, with what is allowed, even when a required one is then missing', () => {
    const typo: Record<string, unknown> = { ...minimal, epocs: 2 };
    delete typo.epochs;
    const err = refusal(typo);
    assert.equal(err.field, 'epocs');
    assert.match(err.message, /^invalid spec: epocs: unknown field \(allowed: model, dataset, epochs, batchSize,/);
  });
});

describe('spec schema: kept behaviour of the old validator', () => {
  it('still exports everything the old modules did, from spec/validate too', () => {
    for (const name of [
      'validateSpec',
      'SpecError',
      'stepCounts',
      'mergeSpec',
      'MODELS',
      'DATASETS',
      'OPTIMIZERS',
      'SCHEDULES',
      'MODEL_LAYERS',
      'DATASET_SIZES',
    ]) {
      assert.ok(name in legacyValidate, name);
    }
    assert.deepEqual(legacyValidate.DATASETS, ['mnist', 'iris']);
    assert.deepEqual(legacyValidate.MODEL_LAYERS['mnist-cnn'], ['conv1', 'conv2', 'dense1', 'dense2']);
  });

  it('counts steps with the last partial batch', () => {
    const spec = validateSpec(withSpec({ dataset: { trainLimit: 101 }, batchSize: 10, epochs: 3 }));
    assert.deepEqual(stepCounts(spec), { stepsPerEpoch: 11, totalSteps: 33 });
  });

  it('merges an override: objects merge, other values replace, {} changes nothing', () => {
    const base = validateSpec(withSpec({ optimizer: { name: 'adam', learningRate: 0.001 } }));
    assert.deepEqual(mergeSpec(base, {}), base);
    const lr = validateSpec(mergeSpec(base, { optimizer: { learningRate: 0.5 }, freeze: ['dense1'] }));
    assert.deepEqual(lr.optimizer, { ...base.optimizer, learningRate: 0.5 });
    assert.deepEqual(lr.freeze, ['dense1']);
  });

  it('keeps a "__proto__" key of an override a field, refused as unknown', () => {
    const merged = mergeSpec(minimal, JSON.parse('{"__proto__": {"freeze": ["dense1"]}}'));
    assert.equal(Object.getPrototypeOf(merged), Object.prototype);
    assert.equal(refusal(merged).field, '__proto__');
  });

  it('replaces an optimizer or schedule whose name changes, so a fork may switch optimizer', () => {
    const base = validateSpec(
      withSpec({ optimizer: { name: 'adam', learningRate: 0.001 }, schedule: { name: 'step', every: 5, factor: 0.5 } }),
    );
    const merged = validateSpec(
      mergeSpec(base, { optimizer: { name: 'sgd', learningRate: 0.1 }, schedule: { name: 'cosine' } }),
    );
    assert.deepEqual(merged.optimizer, { name: 'sgd', learningRate: 0.1 });
    assert.deepEqual(merged.schedule, { name: 'cosine', warmupSteps: 0, minLearningRate: 0 });
  });
});

describe('spec: learning-rate rule shared with learning-rate changes', () => {
  it('agrees with the schema on every value', () => {
    for (const v of [0.1, 10, 10.5, 0, -1, 1e-320, LEARNING_RATE_MIN, 1e-38, 1e-30, Infinity, NaN, '0.1', null]) {
      const problem = learningRateProblem(v);
      let schema: string | undefined;
      try {
        validateSpec(withSpec({ optimizer: { learningRate: v } }));
      } catch (err) {
        schema = (err as SpecError).message.replace('invalid spec: optimizer.learningRate: ', '');
      }
      if (Number.isNaN(v)) assert.ok(problem && schema, 'NaN is refused by both');
      else assert.equal(problem, schema, String(v));
    }
  });
});

describe('spec: storage URLs (the rule the store opener uses)', () => {
  it('parses file:// and s3:// URLs', () => {
    assert.deepEqual(parseStorageUrl('file://.data/ck'), { kind: 'file', path: '.data/ck' });
    assert.deepEqual(parseStorageUrl('file:///var/ck'), { kind: 'file', path: '/var/ck' });
    assert.deepEqual(parseStorageUrl('FILE://x'), { kind: 'file', path: 'x' });
    assert.deepEqual(parseStorageUrl('s3://my-bucket/some/prefix/'), {
      kind: 's3',
      bucket: 'my-bucket',
      prefix: 'some/prefix',
    });
    assert.deepEqual(parseStorageUrl('s3://my.bucket'), { kind: 's3', bucket: 'my.bucket', prefix: '' });
    // A legacy us-east-1 bucket name still opens.
    assert.deepEqual(parseStorageUrl('s3://Old_Bucket/p'), { kind: 's3', bucket: 'Old_Bucket', prefix: 'p' });
  });

  it('refuses what cannot be opened, with messages the store opener keeps', () => {
    const refused: Array<[unknown, RegExp]> = [
      ['/tmp/x', /not a URL: use file:\/\/PATH, s3:\/\/BUCKET\/PREFIX, gs:\/\/BUCKET\/PREFIX, az:\/\/CONTAINER/],
      ['', /not a URL/],
      [undefined, /not a URL/],
      ['ftp://b/p', /unknown scheme ftp:\/\//],
      ['gs://b/p', /invalid bucket name "b"/],
      ['s3:///nobucket', /has no bucket/],
      ['s3://', /has no bucket/],
      ['file://', /has no path/],
      ['file://a\u0000b', /control character \(U\+0000 at position 8\)/],
      ['s3://b\u007f/x', /control character \(U\+007F/],
      ['s3://my bucket/x', /invalid bucket name "my bucket"/],
      ['s3://b?x=1/p', /invalid bucket name "b\?x=1"/],
      ['s3://ab/x', /invalid bucket name "ab"/],
      ['s3://bucket/a//b', /empty, "\." or "\.\." segment in its prefix "a\/\/b"/],
      ['s3://bucket/a/../b', /segment in its prefix/],
    ];
    for (const [url, message] of refused) {
      assert.throws(
        () => parseStorageUrl(url as string),
        (err: unknown) => err instanceof StorageUrlError && message.test(err.message),
        JSON.stringify(url),
      );
    }
    assert.equal(
      (() => {
        try {
          parseStorageUrl('s3:///x');
        } catch (err) {
          return (err as Error).message;
        }
      })(),
      'checkpoint storage "s3:///x" has no bucket: use s3://BUCKET/PREFIX',
    );
  });
});

describe('spec: JSON Schema and purity', () => {
  it('docs/spec.schema.json is the schema as generated (npm run spec:schema)', () => {
    const committed: unknown = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs', 'spec.schema.json'), 'utf8'));
    assert.deepEqual(committed, specJsonSchema());
  });

  it('describes the spec as written: required fields, defaults, bounds, no unknown fields', () => {
    const s = specJsonSchema() as {
      required: string[];
      additionalProperties: boolean;
      properties: Record<
        string,
        { default?: unknown; maximum?: number; properties?: Record<string, { maximum?: number }> }
      >;
    };
    assert.deepEqual([...s.required].sort(), ['batchSize', 'checkpoint', 'dataset', 'epochs', 'model', 'optimizer']);
    assert.equal(s.additionalProperties, false);
    assert.equal(s.properties.seed.default, 42);
    assert.equal(s.properties.augment.properties?.shift.maximum, AUGMENT_SHIFT_MAX);
    assert.equal(s.properties.checkpoint.properties?.keepLatest.maximum, 10_000);
  });

  it('the zod-free modules (types, catalog, helpers, storage-url) do not load zod', () => {
    const script = `
      for (const m of ['types', 'catalog', 'helpers', '../storage/url']) require(${JSON.stringify(path.join(repoRoot, 'dist', 'spec'))} + '/' + m);
      const zod = Object.keys(require.cache).filter((k) => k.includes('node_modules/zod'));
      process.stdout.write(String(zod.length));
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '0');
    const control = spawnSync(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(path.join(repoRoot, 'dist', 'spec', 'schema'))}); process.stdout.write(String(Object.keys(require.cache).filter((k) => k.includes('node_modules/zod')).length > 0))`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(control.stdout, 'true', 'the check sees zod when it is loaded');
  });
});
