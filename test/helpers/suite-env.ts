import { tmpdir } from 'node:os';
import { delimiter } from 'node:path';

// Loaded by mocha before any test file (.mocharc.json "require"): the whole suite runs on one backend, wasm, unless
// the environment names one. Once setup:native's TensorFlow build exists (the native backend test builds it),
// "auto" would pick it, and tests before and after that test would train on different backends. Tests about the
// backend choice itself set DURABLE_TRAIN_BACKEND in the processes they start.
process.env.DURABLE_TRAIN_BACKEND ??= 'wasm';

// Datasets and model files may be read only under DURABLE_TRAIN_DATA_ROOTS (default: the worker's directory and its
// checkpoint store). Tests write theirs to temporary directories: allow those, for this process and the workers it
// starts (they inherit the environment). The roots test sets its own list.
process.env.DURABLE_TRAIN_DATA_ROOTS ??= [process.cwd(), tmpdir()].join(delimiter);
