// Backend choice and our wasm Conv2DBackpropFilter kernel, checked against the pure-JS cpu backend.
import * as assert from 'assert';
import { execFile } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import * as tf from '@tensorflow/tfjs';
import { currentBackend, initBackend, resetBackendChoice, type BackendName } from '../../training/backend';
import { conv2DBackpropFilterWasm } from '../../training/kernels/wasm-conv2d-backprop-filter';

const execFileAsync = promisify(execFile);

/** Deterministic values in [-1, 1), so both backends see the same inputs. */
function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.strictEqual(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

interface ConvCase {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: 'same' | 'valid';
}

/** dL/dW for L = sum(conv2d(x, W) * dy), i.e. Conv2DBackpropFilter(x, dy), through tf.grad. */
async function filterGrad(backend: BackendName, c: ConvCase, seed: number): Promise<Float32Array> {
  await initBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(randomValues(tf.util.sizeFromShape(c.x), seed), c.x);
    const w0 = tf.zeros(c.filter) as tf.Tensor4D;
    const outShape = tf.conv2d(x, w0, c.strides, c.pad).shape;
    const dy = tf.tensor4d(randomValues(tf.util.sizeFromShape(outShape), seed + 1), outShape);
    const g = tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, c.strides, c.pad), dy)))(w0);
    assert.deepStrictEqual(g.shape, c.filter);
    return g.dataSync() as Float32Array;
  });
}

// A tiny CNN with the ops our models train with: conv2d, relu, maxPool, matMul, a multiplicative dropout
// mask, softmax cross-entropy; gradients through tf.variableGrads, plain SGD.
export async function trainTinyCnn(backend: BackendName, steps: number): Promise<{ losses: number[]; hash: string }> {
  await initBackend(backend);
  const batch = 8;
  const shapes: Record<string, number[]> = {
    c1: [3, 3, 1, 4],
    b1: [4],
    c2: [3, 3, 4, 8],
    b2: [8],
    d1: [2 * 2 * 8, 16],
    bd1: [16],
    d2: [16, 10],
    bd2: [10],
  };
  const vars: Record<string, tf.Variable> = {};
  let seed = 11;
  for (const [name, shape] of Object.entries(shapes)) {
    const vals = randomValues(tf.util.sizeFromShape(shape), seed++).map((v) => v * 0.4);
    vars[name] = tf.variable(tf.tensor(vals, shape), true, `tiny/${name}`);
  }
  const losses: number[] = [];
  // One fixed batch (so the loss must fall), a fresh dropout mask per step.
  const x = tf.tensor4d(randomValues(batch * 12 * 12, 100), [batch, 12, 12, 1]);
  const labels = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: batch }, (_, i) => (i * 3) % 10),
      'int32',
    ),
    10,
  );
  for (let step = 0; step < steps; step++) {
    const mask = tf.tensor2d(
      Array.from(randomValues(batch * 16, 200 + step), (v) => (v > -0.6 ? 1 / 0.8 : 0)),
      [batch, 16],
    );
    const { value, grads } = tf.variableGrads(() => {
      let h = tf.relu(tf.add(tf.conv2d(x, vars.c1 as tf.Tensor4D, 1, 'same'), vars.b1)) as tf.Tensor4D;
      h = tf.maxPool(h, 2, 2, 'valid'); // 6x6
      h = tf.relu(tf.add(tf.conv2d(h, vars.c2 as tf.Tensor4D, 1, 'valid'), vars.b2)) as tf.Tensor4D; // 4x4
      h = tf.maxPool(h, 2, 2, 'valid'); // 2x2
      const flat = tf.reshape(h, [batch, 2 * 2 * 8]);
      const d1 = tf.mul(tf.relu(tf.add(tf.matMul(flat, vars.d1 as tf.Tensor2D), vars.bd1)), mask);
      const logits = tf.add(tf.matMul(d1 as tf.Tensor2D, vars.d2 as tf.Tensor2D), vars.bd2);
      return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
    });
    losses.push(value.dataSync()[0]);
    tf.tidy(() => {
      for (const [name, v] of Object.entries(vars)) v.assign(tf.sub(v, tf.mul(grads[`tiny/${name}`], 0.1)));
    });
    tf.dispose([mask, value, grads]);
  }
  tf.dispose([x, labels]);
  const hash = createHash('sha256');
  for (const name of Object.keys(shapes)) hash.update(Buffer.from(vars[name].dataSync().buffer));
  tf.dispose(Object.values(vars));
  return { losses, hash: hash.digest('hex') };
}

// The file doubles as a module for the child processes below, loaded without mocha.
if (typeof describe === 'function') {
  const repoRoot = path.resolve(__dirname, '..', '..', '..');

  /** Runs `script` in a fresh node process with the compiled modules of this checkout. */
  async function inChild(script: string, env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
    return execFileAsync(process.execPath, ['-e', script], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      timeout: 120_000,
    });
  }

  describe('training/backend', () => {
    // Mocha runs every suite in one process: leave no choice behind for the suites that follow.
    let backendBefore: string | null = null;
    before(() => {
      backendBefore = (tf.engine() as unknown as { backendName: string | null }).backendName;
    });
    after(async () => {
      resetBackendChoice();
      if (backendBefore) await tf.setBackend(backendBefore);
    });

    describe('wasm Conv2DBackpropFilter kernel', () => {
      const cases: ConvCase[] = [
        { x: [2, 5, 5, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
        { x: [2, 5, 5, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'valid' },
        { x: [3, 7, 6, 2], filter: [3, 2, 2, 5], strides: 2, pad: 'same' },
        // (6 - 3) % 2 != 0: the last input column is read by no output, so the kernel crops.
        { x: [3, 7, 6, 2], filter: [3, 3, 2, 5], strides: 2, pad: 'valid' },
        // Even filter with 'same': asymmetric padding (more at the bottom/right).
        { x: [2, 9, 8, 3], filter: [4, 4, 3, 2], strides: 2, pad: 'same' },
        { x: [2, 8, 8, 4], filter: [2, 3, 4, 3], strides: [2, 1], pad: 'same' },
        { x: [2, 11, 10, 2], filter: [5, 3, 2, 3], strides: [1, 3], pad: 'valid' },
        // Batch 1 and 1 input channel: the Transpose kernel takes its no-op path.
        { x: [1, 6, 6, 1], filter: [3, 3, 1, 2], strides: 1, pad: 'valid' },
        { x: [4, 3, 3, 2], filter: [1, 1, 2, 3], strides: 1, pad: 'valid' },
        { x: [2, 4, 4, 2], filter: [4, 4, 2, 2], strides: 1, pad: 'valid' },
      ];
      cases.forEach((c, i) => {
        it(`matches cpu's tf.grad for x ${c.x} filter ${c.filter} strides ${c.strides} ${c.pad}`, async () => {
          const expected = await filterGrad('cpu', c, 1000 + i);
          const actual = await filterGrad('wasm', c, 1000 + i);
          const d = maxAbsDiff(actual, expected);
          assert.ok(d <= 1e-4, `max |wasm - cpu| = ${d}`);
          assert.ok(maxAbs(expected) > 0.1, 'degenerate case: gradient is ~0');
        });
      });

      it('matches cpu on a model-sized layer to 1e-4 relative (float32 sums of 968 terms)', async () => {
        const c: ConvCase = { x: [8, 13, 13, 32], filter: [3, 3, 32, 64], strides: 1, pad: 'valid' };
        const expected = await filterGrad('cpu', c, 7);
        const actual = await filterGrad('wasm', c, 7);
        const d = maxAbsDiff(actual, expected);
        assert.ok(d <= 1e-4 * maxAbs(expected), `max |wasm - cpu| = ${d}, max |cpu| = ${maxAbs(expected)}`);
      });

      it('is the registered wasm kernel and frees its temporaries', async () => {
        await initBackend('wasm');
        assert.strictEqual(tf.getKernel('Conv2DBackpropFilter', 'wasm')?.kernelFunc, conv2DBackpropFilterWasm);
        const c: ConvCase = { x: [3, 7, 6, 2], filter: [3, 3, 2, 5], strides: 2, pad: 'valid' };
        await filterGrad('wasm', c, 1); // warm up: the first run may allocate lasting state
        const backend = tf.backend();
        const tensors = tf.memory().numTensors;
        const dataIds = backend.numDataIds();
        await filterGrad('wasm', c, 1);
        assert.strictEqual(tf.memory().numTensors, tensors);
        assert.strictEqual(backend.numDataIds(), dataIds);
      });
    });

    describe('initBackend', () => {
      it('initializes cpu', async () => {
        const info = await initBackend('cpu');
        assert.deepStrictEqual(info, { name: 'cpu', version: tf.version.tfjs, threads: 1 });
        assert.strictEqual(tf.getBackend(), 'cpu');
        assert.strictEqual(currentBackend(), info);
      });

      it('initializes wasm, single-threaded, and is idempotent', async () => {
        const info = await initBackend('wasm');
        assert.strictEqual(info.name, 'wasm');
        assert.strictEqual(info.version, tf.version.tfjs);
        assert.strictEqual(info.threads, 1);
        assert.strictEqual(tf.getBackend(), 'wasm');
        assert.strictEqual(await initBackend('wasm'), info);
        assert.strictEqual(await initBackend('auto'), info, 'auto keeps the backend already chosen');
        assert.strictEqual(currentBackend(), info);
      });

      it('chooses afresh after resetBackendChoice', async () => {
        const cpu = await initBackend('cpu');
        assert.strictEqual(await initBackend('auto'), cpu);
        resetBackendChoice();
        assert.strictEqual(currentBackend(), null);
        const fresh = await initBackend('auto');
        assert.notStrictEqual(fresh, cpu);
        assert.notStrictEqual(fresh.name, 'cpu', 'auto prefers tensorflow or wasm');
      });

      it('rejects an unknown backend name, from the argument or the environment', async () => {
        await assert.rejects(
          initBackend('gpu' as BackendName),
          /unknown tfjs backend 'gpu'.*auto, tensorflow, wasm, cpu/,
        );
        const saved = process.env.DURABLE_TRAIN_BACKEND;
        process.env.DURABLE_TRAIN_BACKEND = 'webgpu';
        try {
          await assert.rejects(initBackend(), /unknown tfjs backend 'webgpu' \(from DURABLE_TRAIN_BACKEND\)/);
        } finally {
          if (saved === undefined) delete process.env.DURABLE_TRAIN_BACKEND;
          else process.env.DURABLE_TRAIN_BACKEND = saved;
        }
      });

      it('tensorflow: chosen when @tensorflow/tfjs-node is installed, else rejected with the reason', async function () {
        let installed = true;
        try {
          require.resolve('@tensorflow/tfjs-node');
        } catch {
          installed = false; // the expected case on machines that cannot download libtensorflow
        }
        // An earlier auto may have chosen the setup:native build; choose afresh, with that build hidden too.
        resetBackendChoice();
        const before = tf.getBackend();
        if (installed) {
          // Installed: the explicit choice must work (and is undone, so the other tests keep their backend).
          resetBackendChoice();
          try {
            const info = await initBackend('tensorflow');
            assert.strictEqual(info.name, 'tensorflow');
            assert.strictEqual(tf.getBackend(), 'tensorflow');
          } finally {
            resetBackendChoice();
            await tf.setBackend(before);
          }
          return;
        }
        process.env.DURABLE_TRAIN_TFJS_NODE_DIR = path.join(os.tmpdir(), 'durable-train-no-tfjs-node');
        try {
          await assert.rejects(
            initBackend('tensorflow'),
            /tfjs backend 'tensorflow' is unavailable: @tensorflow\/tfjs-node is not installed/,
          );
        } finally {
          delete process.env.DURABLE_TRAIN_TFJS_NODE_DIR;
        }
        assert.strictEqual(tf.getBackend(), before, 'a failed explicit choice leaves the backend alone');
      });

      it('auto and DURABLE_TRAIN_BACKEND choose in a fresh process and log one line', async () => {
        const script = `require('./dist/training/backend').initBackend().then((i) => console.log(JSON.stringify(i)))`;
        const tfjsNode = (() => {
          try {
            require.resolve('@tensorflow/tfjs-node');
            return true;
          } catch {
            return false;
          }
        })();
        const auto = await inChild(script, {
          DURABLE_TRAIN_BACKEND: '',
          DURABLE_TRAIN_TFJS_NODE_DIR: path.join(os.tmpdir(), 'durable-train-no-tfjs-node'),
        });
        const autoInfo = JSON.parse(auto.stdout) as { name: string; fallbackReason?: string };
        assert.strictEqual(autoInfo.name, tfjsNode ? 'tensorflow' : 'wasm');
        assert.strictEqual(autoInfo.fallbackReason, undefined, 'an absent optional tfjs-node is not a fallback');
        const logLines = auto.stderr.split('\n').filter((l) => l.startsWith('durable-train: tfjs backend'));
        assert.deepStrictEqual(logLines.length, 1, auto.stderr);
        if (!tfjsNode)
          assert.match(logLines[0], /^durable-train: tfjs backend wasm \(tfjs 4\.\d+\.\d+, simd, 1 thread\)$/);

        const cpu = await inChild(script, { DURABLE_TRAIN_BACKEND: 'cpu' });
        assert.strictEqual((JSON.parse(cpu.stdout) as { name: string }).name, 'cpu');
      });
    });

    describe('initBackend with a stand-in @tensorflow/tfjs-node', () => {
      // tfjs-node cannot be installed here, so the auto path that picks it is checked with stand-ins found
      // through NODE_PATH: one that registers a 'tensorflow' backend (the cpu backend under that name, as the
      // real package registers its native one) and one that fails to load like a broken native binding.
      let dir: string;
      before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-train-fake-tfjs-node-'));
        const write = (name: string, body: string) => {
          const pkg = path.join(dir, name, 'node_modules', '@tensorflow', 'tfjs-node');
          fs.mkdirSync(pkg, { recursive: true });
          fs.writeFileSync(path.join(pkg, 'index.js'), body);
        };
        write(
          'working',
          `const tf = require(require.resolve('@tensorflow/tfjs', { paths: [process.cwd()] }));
          for (const k of tf.getKernelsForBackend('cpu')) tf.registerKernel({ ...k, backendName: 'tensorflow' });
          tf.registerBackend('tensorflow', tf.findBackendFactory('cpu'), 3);`,
        );
        write('broken', `throw new Error('libtensorflow.so.2: cannot open shared object file');`);
      });
      after(() => fs.rmSync(dir, { recursive: true, force: true }));

      const script = `require('./dist/training/backend').initBackend().then(
        (i) => console.log(JSON.stringify(i)), (e) => console.log(JSON.stringify({ error: e.message })))`;
      const withFake = (name: string, backend = '') =>
        inChild(script, { NODE_PATH: path.join(dir, name, 'node_modules'), DURABLE_TRAIN_BACKEND: backend });

      it('auto picks tensorflow when @tensorflow/tfjs-node loads', async () => {
        const { stdout, stderr } = await withFake('working');
        assert.deepStrictEqual(JSON.parse(stdout), { name: 'tensorflow', version: tf.version.tfjs });
        assert.match(stderr, /^durable-train: tfjs backend tensorflow \(tfjs 4\.\d+\.\d+\)$/m);
      });

      it('auto falls back to wasm and says why when @tensorflow/tfjs-node is installed but broken', async () => {
        const { stdout, stderr } = await withFake('broken');
        const info = JSON.parse(stdout) as { name: string; fallbackReason?: string };
        assert.strictEqual(info.name, 'wasm');
        assert.match(info.fallbackReason ?? '', /^tensorflow: @tensorflow\/tfjs-node failed to load: libtensorflow/);
        assert.match(stderr, /durable-train: tfjs backend wasm \(.*\); fell back: tensorflow: /);
      });

      it('an explicit tensorflow that is broken is an error, not a fallback', async () => {
        const { stdout } = await withFake('broken', 'tensorflow');
        assert.match(
          (JSON.parse(stdout) as { error: string }).error,
          /tfjs backend 'tensorflow' is unavailable: @tensorflow\/tfjs-node failed to load: libtensorflow/,
        );
      });
    });

    describe('tiny CNN training', () => {
      it('runs on wasm and matches cpu losses to 1e-4 over 5 steps', async () => {
        const cpu = await trainTinyCnn('cpu', 5);
        const wasm = await trainTinyCnn('wasm', 5);
        assert.ok(
          cpu.losses.every((l) => Number.isFinite(l)),
          `cpu losses ${cpu.losses}`,
        );
        assert.ok(maxAbsDiff(wasm.losses, cpu.losses) <= 1e-4, `wasm ${wasm.losses} vs cpu ${cpu.losses}`);
        assert.ok(cpu.losses[4] < cpu.losses[0], `loss should fall: ${cpu.losses}`);
      });

      it('gives bitwise identical weights on wasm in two separate processes', async () => {
        const testModule = path.join(__dirname, 'backend.test.js');
        const script = `require(${JSON.stringify(testModule)}).trainTinyCnn('wasm', 5).then((r) => console.log(JSON.stringify(r)))`;
        const [a, b] = [await inChild(script), await inChild(script)];
        const ra = JSON.parse(a.stdout) as { hash: string; losses: number[] };
        const rb = JSON.parse(b.stdout) as { hash: string; losses: number[] };
        assert.strictEqual(ra.hash, rb.hash);
        assert.deepStrictEqual(ra.losses, rb.losses);
        const here = await trainTinyCnn('wasm', 5);
        assert.strictEqual(here.hash, ra.hash, 'same weights in this process too');
      });
    });
  });
}
