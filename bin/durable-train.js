#!/usr/bin/env node
// The `durable-train` command. `npm ci` / `npm install` build dist/ (the `prepare` script); when dist/ is missing
// anyway (installed with --ignore-scripts, or removed), build it once here so the command runs instead of failing
// with a module-not-found error. Build output goes to stderr: stdout stays the command's own (--json).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const entry = path.join(root, 'dist', 'client.js');

if (!fs.existsSync(entry)) {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  } catch {
    process.stderr.write(
      `durable-train: ${entry} is missing and TypeScript is not installed to build it: ` +
        `run \`npm ci\` (with dev dependencies) in ${root}\n`,
    );
    process.exit(1);
  }
  process.stderr.write('durable-train: dist/ is missing; building it once (npm run build)...\n');
  const { spawnSync } = require('node:child_process');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], {
    cwd: root,
    stdio: ['ignore', process.stderr, process.stderr],
  });
  if (r.status !== 0 || !fs.existsSync(entry)) {
    process.stderr.write(`durable-train: the build failed (exit ${r.status ?? r.signal}); see the errors above\n`);
    process.exit(1);
  }
}

require(entry);
