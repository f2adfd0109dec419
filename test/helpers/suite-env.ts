// Loaded by mocha before any test file (.mocharc.json "require"): the whole suite runs on one backend, wasm, unless
// the environment names one. Once setup:native's TensorFlow build exists (the native backend test builds it),
// "auto" would pick it, and tests before and after that test would train on different backends. Tests about the
// backend choice itself set DURABLE_TRAIN_BACKEND in the processes they start.
process.env.DURABLE_TRAIN_BACKEND ??= 'wasm';
