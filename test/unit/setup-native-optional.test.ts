// `npm start` sets up the native TensorFlow backend with `scripts/setup-native.sh --optional`: where it cannot (here:
// no C++ compiler), it says why in one line and the run continues on the WebAssembly backend; where the binding is
// already built, no compiler is needed. The script runs for real, from a copy of it in a scratch project (no
// .tools/, so nothing is downloaded: the compiler check comes first) and from this checkout.
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { nativeUnavailable } from '../helpers/native';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const SCRIPT = path.join('scripts', 'setup-native.sh');

interface Ran {
  code: number;
  stderr: string;
}

async function runScript(root: string, args: string[], env: NodeJS.ProcessEnv): Promise<Ran> {
  const base = { ...process.env };
  delete base.DURABLE_TRAIN_BACKEND;
  try {
    const { stderr } = await promisify(execFile)('bash', [path.join(root, SCRIPT), ...args], {
      env: { ...base, ...env },
      timeout: 60_000,
    });
    return { code: 0, stderr };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? -1, stderr: e.stderr ?? '' };
  }
}

describe('setup-native --optional (what npm start runs)', function () {
  this.timeout(120_000);
  let scratch: string;
  const noCompiler = { CXX: '/nonexistent/c++' };

  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-train-setup-native-'));
    fs.mkdirSync(path.join(scratch, 'scripts'));
    fs.copyFileSync(path.join(repoRoot, SCRIPT), path.join(scratch, SCRIPT));
  });
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it('without a compiler: one line saying why and that training continues on wasm, exit 0, nothing half-built', async () => {
    const r = await runScript(scratch, ['--optional'], noCompiler);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      /^setup:native: no native TensorFlow backend \(no C\+\+ compiler: \/nonexistent\/c\+\+ is not on PATH .*\); training continues on the WebAssembly backend \(DURABLE_TRAIN_BACKEND=wasm skips this step\)$/,
    );
    assert.equal(fs.existsSync(path.join(scratch, '.tools', 'tfjs-node', 'built')), false);
  });

  it('run as `npm run setup:native` (not optional), the same failure fails the command', async () => {
    const r = await runScript(scratch, [], noCompiler);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /setup:native: FAILED: no C\+\+ compiler/);
  });

  it('DURABLE_TRAIN_BACKEND=wasm (or cpu) skips the step silently; an unknown flag is a usage error', async () => {
    for (const backend of ['wasm', 'cpu']) {
      const r = await runScript(scratch, ['--optional'], { ...noCompiler, DURABLE_TRAIN_BACKEND: backend });
      assert.deepEqual(r, { code: 0, stderr: '' });
    }
    const r = await runScript(scratch, ['--quick'], {});
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: scripts\/setup-native.sh \[--optional\]/);
  });

  it('with no native build, a worker in auto mode initialises the wasm backend', async () => {
    const script = `require('./dist/training/backend').initBackend('auto').then((i) => console.log(i.name))`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
      cwd: repoRoot,
      // The lookup override names a directory without a build: as on a machine where the build failed.
      env: { ...process.env, DURABLE_TRAIN_BACKEND: '', DURABLE_TRAIN_TFJS_NODE_DIR: scratch },
      timeout: 60_000,
    });
    assert.equal(stdout.trim().split('\n').pop(), 'wasm');
  });

  it('once the binding is built, the step needs no compiler and says so', async function () {
    const missing = nativeUnavailable();
    if (missing) {
      if (process.env.CI === 'true') assert.fail(missing);
      this.skip();
    }
    const r = await runScript(repoRoot, ['--optional'], noCompiler);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^setup:native: already built \(tfjs-node /);
  });
});
