// @ts-check
// Mutation testing of the core (issue 28): `npm run test:mutation`, never part of `npm test`.
//
// Choices, measured on the 2-core machine the sessions share:
// - Mutants are switched in the TypeScript sources; `buildCommand` compiles the instrumented sandbox once with tsc
//   (stryker.tsconfig.json: only the unit tests below and what they import, about a third of the full build), and the
//   mocha runner runs the compiled dist/test/unit files, as `npm test` does. No ts-node/tsx: the project never runs TS.
// - Only the fast, in-process unit tests of the mutated modules run; tests that train models (trainer, exactness,
//   layer-kinds, promised-specs: seconds to minutes per run) stay in `npm test`. Optimizers are exercised by test/unit/optimizers.test.ts.
// - coverageAnalysis 'perTest': each mutant runs only the tests that reach it.
// - concurrency 1: one test-runner process, so the other sessions on the machine keep a core.
// - The TypeScript checker (it drops mutants that would not compile) runs only with STRYKER_TS_CHECK=1: here it costs
//   about 5 s per mutant against about 1 s for the tests (docs/testing.md). Without it, a mutant that would not
//   compile still runs (mutants are switched at run time) and is killed by a failing test or counted as survived.
// - ignoreStatic: a mutant reached only while modules load (constants, the zod schema's object literals) would need a
//   fresh process and every test per mutant; they are reported as Ignored, not counted as survived or killed.
// - incremental: a re-run reuses reports/stryker-incremental.json and tests only changed mutants and tests.
// - Stryker 9.6 (10.x needs Node 22; the project supports Node 20). Its mocha runner requires mocha's cli helpers
//   without an extension, and mocha 12 ships them as .cjs: the hook below lets require() find .cjs files, here (the
//   runner is loaded in this process) and in the test-runner process (testRunnerNodeArgs).
// The S3 tests find SeaweedFS under .tools, which the sandbox does not copy (ignorePatterns): point them at it.
import { existsSync } from 'node:fs';
import Module from 'node:module';
import { resolve } from 'node:path';

const cjsHook = "import Module from 'node:module'; Module._extensions['.cjs'] ??= Module._extensions['.js'];";
// @ts-expect-error Module._extensions is Node's (deprecated, still supported) table of require() loaders
Module._extensions['.cjs'] ??= Module._extensions['.js'];

const weed = resolve('.tools/venv/bin/weed');
if (!process.env.DURABLE_TRAIN_WEED && existsSync(weed)) process.env.DURABLE_TRAIN_WEED = weed;

// STRYKER_GREP narrows the tests run (mocha's grep), e.g. '^(?!.*(real S3 server|s3 store \\(SeaweedFS))' leaves out the
// S3 variants of the checkpoint tests: they assert the same behaviour over another store (storage/ is not mutated here)
// and start SeaweedFS, 2-9 s per mutant they cover.
const grep = process.env.STRYKER_GREP;

const unitTests = [
  'checkpoint-manager',
  'checkpoint-signing',
  'checkpoint-storage-outage',
  'property-manifest',
  'spec-schema',
  'spec-rules',
  'spec-layer-lists',
  'spec-fork',
  'property-spec',
  'property-ids',
  'model-fit',
  'model-fit-shapes',
  'cli-ids',
  'training-prng',
  'training-schedules',
  'optimizers',
  'metrics-log-edges',
  'metrics-log',
  'checkpoint-rules',
  // Last: it trains a model (seconds), so a mutant the fast tests above kill never waits for it (mocha bails).
  'checkpoint-rows',
];

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: [
    'checkpoint/**/*.ts',
    'spec/**/*.ts',
    'training/prng.ts',
    'training/optimizers.ts',
    'training/schedules.ts',
    'telemetry/metrics-log.ts',
  ],
  ignorePatterns: ['.tools', 'reports', 'bench/results'],
  testRunner: 'mocha',
  testRunnerNodeArgs: ['--import', `data:text/javascript,${encodeURIComponent(cjsHook)}`],
  buildCommand: 'tsc -p stryker.tsconfig.json',
  mochaOptions: {
    'no-config': true,
    'no-package': true,
    spec: unitTests.map((name) => `dist/test/unit/${name}.test.js`),
    require: ['dist/test/helpers/suite-env.js'],
    ...(grep ? { grep } : {}),
  },
  checkers: process.env.STRYKER_TS_CHECK === '1' ? ['typescript'] : [],
  checkerNodeArgs: ['--import', `data:text/javascript,${encodeURIComponent(cjsHook)}`],
  tsconfigFile: 'stryker.tsconfig.json',
  coverageAnalysis: 'perTest',
  ignoreStatic: true,
  concurrency: 1,
  timeoutMS: 10000,
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['json', 'html', 'clear-text', 'progress'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
