// How training/backend finds the tfjs-node that `npm run setup:native` builds (outside node_modules), and the
// TensorFlow settings it pins before libtensorflow loads. Runs anywhere: a stand-in package plays tfjs-node (it
// registers the cpu backend's kernels under the name 'tensorflow', as the real one registers its native ones)
// and records the environment it was loaded with. The real build is exercised by
// test/integration/native-backend.test.ts.
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { PRIVATE_TFJS_NODE, TENSORFLOW_ENV_DEFAULTS, privateTfjsNodeDir } from '../../training/backend';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const PINNED = ['TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'TF_DETERMINISTIC_OPS'];

describe('native backend lookup (setup:native build, stand-in package)', function () {
  this.timeout(120_000);
  let dir: string;
  let standIn: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-train-native-lookup-'));
    standIn = path.join(dir, 'tfjs-node');
    fs.mkdirSync(standIn);
    fs.writeFileSync(
      path.join(standIn, 'package.json'),
      JSON.stringify({ name: '@tensorflow/tfjs-node', main: 'index.js' }),
    );
    fs.writeFileSync(
      path.join(standIn, 'index.js'),
      `const tf = require(require.resolve('@tensorflow/tfjs', { paths: [process.cwd()] }));
      globalThis.__tfEnvAtLoad = Object.fromEntries(${JSON.stringify(PINNED)}.map((k) => [k, process.env[k] ?? null]));
      for (const k of tf.getKernelsForBackend('cpu')) tf.registerKernel({ ...k, backendName: 'tensorflow' });
      tf.registerBackend('tensorflow', tf.findBackendFactory('cpu'), 3);`,
    );
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const script = `require('./dist/training/backend').initBackend().then(
    (i) => console.log(JSON.stringify({ ...i, envAtLoad: globalThis.__tfEnvAtLoad ?? null })),
    (e) => console.log(JSON.stringify({ error: e.message })))`;
  async function run(env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
    const base = { ...process.env };
    for (const k of PINNED) delete base[k];
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
      cwd: repoRoot,
      env: { ...base, ...env },
      timeout: 60_000,
    });
    return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  }

  it('looks for the build under .tools/tfjs-node above the module, or where DURABLE_TRAIN_TFJS_NODE_DIR says', () => {
    assert.equal(PRIVATE_TFJS_NODE, path.join('.tools', 'tfjs-node', 'node_modules', '@tensorflow', 'tfjs-node'));
    const saved = process.env.DURABLE_TRAIN_TFJS_NODE_DIR;
    try {
      process.env.DURABLE_TRAIN_TFJS_NODE_DIR = standIn;
      assert.equal(privateTfjsNodeDir(), standIn);
      process.env.DURABLE_TRAIN_TFJS_NODE_DIR = path.join(dir, 'nothing-here');
      assert.equal(privateTfjsNodeDir(), null);
      delete process.env.DURABLE_TRAIN_TFJS_NODE_DIR;
      const found = privateTfjsNodeDir();
      const expected = path.join(repoRoot, PRIVATE_TFJS_NODE);
      assert.equal(found, fs.existsSync(path.join(expected, 'package.json')) ? expected : null);
    } finally {
      if (saved === undefined) delete process.env.DURABLE_TRAIN_TFJS_NODE_DIR;
      else process.env.DURABLE_TRAIN_TFJS_NODE_DIR = saved;
    }
  });

  it('auto loads the build and pins the thread pools before it loads', async () => {
    const info = await run({ DURABLE_TRAIN_BACKEND: '', DURABLE_TRAIN_TFJS_NODE_DIR: standIn });
    assert.equal(info.name, 'tensorflow', JSON.stringify(info));
    assert.deepEqual(
      info.envAtLoad,
      Object.fromEntries(PINNED.map((k) => [k, TENSORFLOW_ENV_DEFAULTS[k]])),
      'set before tfjs-node (and so libtensorflow) loads',
    );
    assert.equal(TENSORFLOW_ENV_DEFAULTS.TF_NUM_INTRAOP_THREADS, '2');
    assert.equal(TENSORFLOW_ENV_DEFAULTS.TF_NUM_INTEROP_THREADS, '1');
  });

  it('leaves thread settings the environment gives alone', async () => {
    const info = await run({
      DURABLE_TRAIN_BACKEND: 'tensorflow',
      DURABLE_TRAIN_TFJS_NODE_DIR: standIn,
      TF_NUM_INTRAOP_THREADS: '4',
    });
    assert.equal(info.name, 'tensorflow', JSON.stringify(info));
    assert.equal((info.envAtLoad as Record<string, string>).TF_NUM_INTRAOP_THREADS, '4');
    assert.equal((info.envAtLoad as Record<string, string>).TF_NUM_INTEROP_THREADS, '1');
  });

  it('a build that fails to load is an error naming it, and auto falls back to wasm saying why', async () => {
    const broken = path.join(dir, 'broken');
    fs.mkdirSync(broken, { recursive: true });
    fs.writeFileSync(path.join(broken, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node' }));
    fs.writeFileSync(
      path.join(broken, 'index.js'),
      `throw new Error('libtensorflow_cc.so.2: cannot open shared object file');`,
    );
    const explicit = await run({ DURABLE_TRAIN_BACKEND: 'tensorflow', DURABLE_TRAIN_TFJS_NODE_DIR: broken });
    assert.match(
      String(explicit.error),
      /tfjs backend 'tensorflow' is unavailable: the tfjs-node built by setup:native \(.*broken\) failed to load: libtensorflow_cc/,
    );
    const auto = await run({ DURABLE_TRAIN_BACKEND: '', DURABLE_TRAIN_TFJS_NODE_DIR: broken });
    assert.equal(auto.name, 'wasm');
    assert.match(String(auto.fallbackReason), /^tensorflow: the tfjs-node built by setup:native/);
  });

  it('without any tfjs-node, tensorflow names setup:native as the way to get it', async () => {
    const r = await run({ DURABLE_TRAIN_BACKEND: 'tensorflow', DURABLE_TRAIN_TFJS_NODE_DIR: path.join(dir, 'none') });
    assert.match(String(r.error), /@tensorflow\/tfjs-node is not installed \(run `npm run setup:native`/);
  });
});
