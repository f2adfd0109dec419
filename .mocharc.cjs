// The suite's mocha settings (`npm test`; a single file runs with `npx mocha --no-config ...`, docs/testing.md).
//
// Test files run three at a time, each in a process of its own (mocha's parallel mode): most of an end-to-end file's
// time is spent waiting on processes it started (a worker taking over, a heartbeat timeout, a paced run, a server
// starting), so three files share the machine's two cores without slowing each other much (measured, docs/testing.md).
// DURABLE_TRAIN_TEST_JOBS sets another count (1: one file at a time, in mocha's own process).
//
// Files are handed out in the order of `spec`: the slowest (measured, docs/testing.md) first, so that no long file
// starts last and leaves one process working alone at the end; then every other file, each once.
const fs = require('node:fs');
const path = require('node:path');

const FOLDERS = ['chaos', 'integration', 'ui', 'replay', 'workflow', 'unit'];
const SLOWEST_FIRST = [
  'chaos/exactness',
  'integration/control',
  'integration/run',
  'integration/cloud-run',
  'integration/own-model',
  'integration/s3-faults',
  'integration/distributed',
  'integration/promises',
  'integration/drill',
  'unit/training-exactness',
  'chaos/trainer-process',
  'integration/curves',
  'integration/s3-run',
  'integration/guards',
  'unit/training-trainer',
  'integration/cli-truth',
];

function testFiles() {
  const all = FOLDERS.flatMap((folder) => {
    const dir = path.join('dist/test', folder);
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.test.js'))
      .sort()
      .map((f) => path.join(dir, f));
  });
  const first = SLOWEST_FIRST.map((name) => path.join('dist/test', `${name}.test.js`)).filter((f) => all.includes(f));
  return [...first, ...all.filter((f) => !first.includes(f))];
}

const jobs = Number(process.env.DURABLE_TRAIN_TEST_JOBS ?? 3);
if (!Number.isInteger(jobs) || jobs < 1)
  throw new Error(`DURABLE_TRAIN_TEST_JOBS must be a whole number ≥ 1, got "${process.env.DURABLE_TRAIN_TEST_JOBS}"`);

module.exports = {
  require: ['dist/test/helpers/suite-env.js'],
  spec: testFiles(),
  parallel: jobs > 1,
  jobs,
  timeout: 120000,
  exit: true,
  'enable-source-maps': true,
};
