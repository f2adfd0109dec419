import { tmpdir } from 'node:os';
import { delimiter } from 'node:path';

// Loaded by mocha before any test file, in each of its processes (.mocharc.cjs "require"): the whole suite runs on one
// backend, wasm, unless the environment names one. Once setup:native's TensorFlow build exists, "auto" would pick it
// for some tests and not others. Tests about the backend choice itself set DURABLE_TRAIN_BACKEND in the processes they
// start.
process.env.DURABLE_TRAIN_BACKEND ??= 'wasm';

// Datasets and model files may be read only under DURABLE_TRAIN_DATA_ROOTS (default: the worker's directory and its
// checkpoint store). Tests write theirs to temporary directories: allow those, for this process and the workers it
// starts (they inherit the environment). The roots test sets its own list.
process.env.DURABLE_TRAIN_DATA_ROOTS ??= [process.cwd(), tmpdir()].join(delimiter);
