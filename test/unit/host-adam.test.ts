// Adam's host update (training/wasm/adam.ts): the WebAssembly SIMD loop gives the JavaScript loop's bits for every
// length (the four-float steps and the one-at-a-time rest) and for awkward values; the weights the optimizer keeps on
// the host are the variable's, and are read back again whenever something else assigned the variable. Also: each
// generated wasm module is what its .wat assembles to now (a .wat edited without scripts/build-wasm.js fails here).
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createOptimizer, type ParamRef } from '../../training/optimizers';
import { adamUpdateJs, HostAdam, type AdamStep } from '../../training/wasm/adam';
import { ADAM_WASM } from '../../training/wasm/adam-module';
import { FINITE_WASM } from '../../training/wasm/finite-module';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const buildWasm = require('../../../scripts/build-wasm.js') as {
  moduleSource(name: string): Promise<string>;
  sources(): string[];
};

/** Deterministic values over many magnitudes, with zeros, denormals and signs (seeded: the same every run). */
function values(n: number, seed: number, positive = false): Float32Array {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    const x = r < 0.05 ? 0 : r < 0.1 ? 1e-42 * (1 + next()) : (next() - 0.5) * 10 ** Math.floor(next() * 14 - 10);
    out[i] = positive ? Math.abs(x) : x;
  }
  return out;
}

function bits(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

const K: AdamStep = {
  b1: 0.9,
  c1: 1 - 0.9,
  b2: 0.999,
  c2: 1 - 0.999,
  stepSize: (1e-3 * Math.sqrt(1 - 0.999 ** 7)) / (1 - 0.9 ** 7),
  eps: 1e-7,
};

describe('Adam on the host (numerics 2)', () => {
  it('the SIMD loop writes the JavaScript loop bits: moments and weights, every length 1-13 and 4,099', () => {
    for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 4099]) {
      const g = values(n, n);
      const m = values(n, n + 1);
      const v = values(n, n + 2, true);
      const w = values(n, n + 3);
      const trained = new Set(['x']);
      const simd = new HostAdam([{ name: 'x', m, v }], trained);
      const js = new HostAdam([{ name: 'x', m, v }], trained, false);
      assert.ok(simd.simd, 'WebAssembly SIMD runs here');
      assert.ok(!js.simd);
      const id = {};
      for (let step = 0; step < 3; step++) {
        const gs = step === 0 ? g : values(n, 100 * step + n);
        const a = simd.update('x', gs, id, () => w, K).slice();
        const b = js.update('x', gs, id, () => w, K).slice();
        assert.deepEqual(bits(a), bits(b), `n=${n} step ${step}: weights`);
        assert.deepEqual(bits(simd.moments('x').m), bits(js.moments('x').m), `n=${n} step ${step}: m`);
        assert.deepEqual(bits(simd.moments('x').v), bits(js.moments('x').v), `n=${n} step ${step}: v`);
        simd.uploaded('x', id);
        js.uploaded('x', id);
      }
      // And both are the rule itself, step by step (the reference loop on copies).
      const [rm, rv, rw, out] = [m.slice(), v.slice(), w.slice(), new Float32Array(n)];
      adamUpdateJs(g, rm, rv, rw, out, K);
      const once = new HostAdam([{ name: 'x', m, v }], trained);
      assert.deepEqual(bits(once.update('x', g, id, () => w, K)), bits(out), `n=${n}: one update`);
      assert.deepEqual(bits(once.moments('x').m), bits(rm));
    }
  });

  it('reads the weights back only when the variable holds another tensor than the one the last update gave it', () => {
    const w0 = Float32Array.of(1, 2, 3);
    const host = new HostAdam([{ name: 'x', m: new Float32Array(3), v: new Float32Array(3) }], new Set(['x']));
    let reads = 0;
    const read = (w: Float32Array) => () => (reads++, w);
    const first = {};
    const a = host.update('x', Float32Array.of(0.5, -0.5, 1), first, read(w0), K).slice();
    assert.equal(reads, 1, 'no host copy yet: read');
    assert.equal(host.weights('x', first), null, 'not uploaded yet');
    const uploadedAs = {};
    host.uploaded('x', uploadedAs);
    assert.deepEqual(host.weights('x', uploadedAs), a);
    assert.equal(host.weights('x', {}), null, 'another tensor: not ours');
    host.update('x', Float32Array.of(0.1, 0.2, 0.3), uploadedAs, read(new Float32Array(3)), K);
    assert.equal(reads, 1, 'the variable still holds our values: none read');
    host.uploaded('x', {});
    const restored = Float32Array.of(7, 8, 9);
    const c = host.update('x', Float32Array.of(0, 0, 0), {}, read(restored), K);
    assert.equal(reads, 2, 'the variable was assigned elsewhere: read again');
    assert.ok(
      Array.from(c).every((x, i) => Math.abs(x - restored[i]) < 0.01),
      `the update started from the values read: ${Array.from(c).join(', ')}`,
    );
    assert.throws(() => host.update('x', new Float32Array(2), {}, read(w0), K), /gradient of x has 2 values, not 3/);
    assert.throws(() => host.moments('y'), /no host moments for y/);
  });

  it('lends the current weights and moments: updates write other arrays until they are given back, with the same bits', () => {
    const n = 4099;
    const m0 = values(n, 1);
    const v0 = values(n, 2, true);
    const w0 = values(n, 3);
    const trained = new Set(['x']);
    const lender = new HostAdam([{ name: 'x', m: m0, v: v0 }], trained);
    const plain = new HostAdam([{ name: 'x', m: m0, v: v0 }], trained, false);
    assert.equal(plain.lend('x', {}), false, 'plain arrays (no module): nothing to lend');
    let id = {};
    const step = (i: number) => {
      const g = values(n, 50 + i);
      const a = lender.update('x', g, id, () => w0, K).slice();
      const b = plain.update('x', g, id, () => w0, K).slice();
      assert.deepEqual(bits(a), bits(b), `update ${i}: weights`);
      assert.deepEqual(bits(lender.moments('x').m), bits(plain.moments('x').m), `update ${i}: m`);
      assert.deepEqual(bits(lender.moments('x').v), bits(plain.moments('x').v), `update ${i}: v`);
      id = {};
      lender.uploaded('x', id);
      plain.uploaded('x', id);
    };
    step(0);
    assert.equal(lender.lend('x', {}), false, 'the variable holds another tensor: its values are not these');
    const lentW = lender.weights('x', id)!;
    const { m: lentM, v: lentV } = lender.moments('x');
    const kept = [lentW, lentM, lentV].map((a) => Buffer.from(bits(a)));
    assert.equal(lender.lend('x', id), true);
    assert.ok(lentW.buffer instanceof SharedArrayBuffer, 'in shared memory (a persist thread reads it in place)');
    assert.equal(lentW.byteOffset % 4096, 0, 'page-aligned');
    for (let i = 1; i <= 4; i++) step(i); // 4 updates: the weights take turns in the two other arrays
    [lentW, lentM, lentV].forEach((a, i) => assert.deepEqual(bits(a), kept[i], `lent array ${i} untouched`));
    assert.equal(lender.lend('x', id), false, 'lent already');
    // A restore while lent: the values read back go into an array that is not lent.
    const restored = values(n, 9);
    const r = lender.update('x', values(n, 10), {}, () => restored, K).slice();
    const p = plain.update('x', values(n, 10), {}, () => restored, K).slice();
    assert.deepEqual(bits(r), bits(p), 'the update after a restore');
    [lentW, lentM, lentV].forEach((a, i) =>
      assert.deepEqual(bits(a), kept[i], `lent array ${i} untouched by a restore`),
    );
    id = {};
    lender.uploaded('x', id);
    plain.uploaded('x', id);
    // Views of other memory, or of the right length at other offsets, give nothing back.
    lender.giveBack([new Uint8Array(lentW.byteLength), new Uint8Array(lentW.buffer, lentW.byteOffset, 4)]);
    assert.equal(lender.lend('x', id), false, 'still lent');
    // Another optimizer's module grows its memory: V8 then gives this thread's shared memories new buffer objects,
    // which must not hide which arrays are ours (lent ones, and the gradient memory updates run in).
    const other = new HostAdam([{ name: 'y', m: new Float32Array(1 << 20), v: new Float32Array(1 << 20) }], trained);
    assert.ok(other.simd);
    assert.ok(lender.gradientBuffer('x'), 'still updating in the module');
    lender.giveBack([lentW, lentM, lentV].map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)));
    assert.equal(lender.lend('x', id), true, 'given back: lent again');
    for (let i = 11; i <= 13; i++) step(i);
  });

  it('the optimizer: a restored (reassigned) weight is read again, so the update starts from it, not from the host copy', () => {
    const make = (): ParamRef[] => [
      { name: 'k', shape: [4], variable: tf.variable(tf.tensor1d([1, -2, 3, -4]), true) },
    ];
    const grads = (i: number) => new Map([['k', tf.tensor1d([0.3 * i, -0.2, 0.1, 0.7])]]);
    const run = (reassignAt: number | null) => {
      const params = make();
      const opt = createOptimizer({ name: 'adam', learningRate: 0.01 }, params);
      opt.numerics = 2;
      for (let i = 1; i <= 4; i++) {
        if (i === reassignAt) params[0].variable.assign(tf.tensor1d([10, 20, 30, 40]));
        const g = grads(i);
        opt.apply(g, 0.01);
        tf.dispose([...g.values()]);
        assert.deepEqual(
          opt.hostWeights(params[0]),
          params[0].variable.dataSync(),
          `step ${i}: the host copy is the variable's values`,
        );
      }
      const out = Array.from(params[0].variable.dataSync());
      opt.dispose();
      params[0].variable.dispose();
      return out;
    };
    const plain = run(null);
    const reassigned = run(3);
    assert.notDeepEqual(reassigned, plain);
    assert.ok(
      reassigned.every((x) => x > 9),
      `updates went on from the assigned values: ${reassigned.join(', ')}`,
    );
  });

  it('every generated wasm module is what its .wat assembles to', async () => {
    const constants: Record<string, string> = { adam: ADAM_WASM, finite: FINITE_WASM };
    assert.deepEqual(buildWasm.sources(), Object.keys(constants).sort(), 'a module per .wat, each tested here');
    for (const name of buildWasm.sources()) {
      const assembled = /'([A-Za-z0-9+/=]+)'/.exec(await buildWasm.moduleSource(name))![1];
      assert.equal(constants[name], assembled, `${name}-module.ts is out of date: node scripts/build-wasm.js`);
    }
  });
});
