// Adam's numerics-2 update on the host (training/optimizers.ts), with WebAssembly SIMD (adam.wat): the same IEEE
// operations in the same order as the JavaScript loop below, so the same bits, at about three times its speed (two
// doubles at a time; 24.2 M weights in 55 ms instead of 160, the mnist-cnn's 225,000 in 0.5 ms instead of 1.5).
//
// Each trained weight keeps, beside its two moments, its current values and a second array the next update writes
// (the two take turns): the weights are read from here, not back from the backend, while the variable still holds
// what the last update uploaded (the same tensor: its dataId), and no array is allocated per step. All of it lives
// in one module instance's memory, sized once for the optimizer's weights, with one more array of values and of
// each moment where it fits: a checkpoint borrows the current ones instead of copying them (lend). Where that memory
// cannot hold even the arrays without the spares (over 4 GiB in all), the arrays are plain JavaScript ones and the
// JavaScript loop updates them: the same bits either way.
import { ADAM_WASM } from './adam-module';
import { instantiate } from './load';

/** Adam's constants for one update: the moments' decay (b1, b2) and its complement (c1, c2), step size, epsilon. */
export interface AdamStep {
  b1: number;
  c1: number;
  b2: number;
  c2: number;
  stepSize: number;
  eps: number;
}

interface Exports {
  memory: { buffer: SharedArrayBuffer; grow(pages: number): number };
  adam(
    g: number,
    m: number,
    v: number,
    w: number,
    o: number,
    mo: number,
    vo: number,
    n: number,
    b1: number,
    c1: number,
    b2: number,
    c2: number,
    s: number,
    eps: number,
  ): void;
}

const PAGE = 65536;
/** The memory a module instance may grow to, short of 4 GiB by one page (no array ends at address 2^32). */
const MAX_BYTES = 65535 * PAGE;
/** Where a lendable array starts: a page of the file system's direct writes, which can then read it in place. */
const LENDABLE_ALIGN = 4096;

/**
 * The update in JavaScript: the new weights into `out` (w is only read), the moments into `mo` and `vo` (by default
 * m and v themselves).
 */
export function adamUpdateJs(
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  w: Float32Array,
  out: Float32Array,
  k: AdamStep,
  mo: Float32Array = m,
  vo: Float32Array = v,
): void {
  const { b1, c1, b2, c2, stepSize, eps } = k;
  for (let j = 0; j < w.length; j++) {
    const gj = g[j];
    const mj = (mo[j] = b1 * m[j] + c1 * gj);
    const vj = (vo[j] = b2 * v[j] + c2 * gj * gj);
    out[j] = w[j] - (stepSize * mj) / (Math.sqrt(vj) + eps);
  }
}

/**
 * The arrays of one of a weight's values (its weights, or a moment): the current values at `cur`, the others free for
 * an update to write, or lent to a checkpoint (which reads them in place until they are given back; nothing writes
 * them meanwhile).
 */
class Held {
  cur = 0;
  lent = -1;
  constructor(readonly arrays: Float32Array[]) {}

  get current(): Float32Array {
    return this.arrays[this.cur];
  }

  /** Where the next values go: the current array when `inPlace` and it is not lent, else one neither current nor lent. */
  next(inPlace: boolean): number {
    if (inPlace && this.cur !== this.lent) return this.cur;
    const i = this.arrays.findIndex((_, j) => j !== this.cur && j !== this.lent);
    if (i < 0) throw new Error('optimizer: no free host array'); // a slot is lent only when it has a spare array
    return i;
  }
}

interface Slot {
  m: Held;
  v: Held;
  /**
   * The weights (current values and the next update's output; three arrays where they may be lent). Null until first
   * updated.
   */
  w: Held | null;
  /** The backend tensor (dataId) the current values were uploaded as: the host copy is valid while the variable holds it. */
  uploaded: object | null;
}

/**
 * Adam's host state for a set of weights: moments, and current and next values of the trained ones. Where the module's
 * memory holds one more array of each (for a model of up to about 600 MB of float32 weights), a checkpoint may borrow a
 * trained weight's current values and moments (lend): it reads them in place, in this thread or the persist thread
 * (the memory is shared), instead of copying them while training waits, and the updates write other arrays until it
 * gives them back.
 */
export class HostAdam {
  private readonly slots = new Map<string, Slot>();
  private readonly ex: Exports | null;
  /**
   * The module's memory as one SharedArrayBuffer, taken once it has its size: every array here is a view of it, and
   * views are known by it. (`memory.buffer` is not a stable identity: V8 gives every shared memory of the thread a
   * new buffer object whenever one of them grows, as another optimizer's module does when it is made.)
   */
  private readonly memory: SharedArrayBuffer | null;
  /** Byte offset of the module's gradient memory (as long as the largest trained weight), when there is a module. */
  private readonly scratch: number;

  /**
   * `weights`: every weight with its moments (copied in); `trained`: the names whose values the updates will write.
   * `useWasm` false keeps everything in JavaScript (for tests comparing the two).
   */
  constructor(
    weights: Array<{ name: string; m: Float32Array; v: Float32Array }>,
    trained: ReadonlySet<string>,
    useWasm = true,
  ) {
    // The module's memory laid out: arrays one after the other, 16-byte aligned (lendable ones at a page), then the
    // gradient memory (as long as the largest trained weight); `end` is the memory it needs.
    const maxTrained = Math.max(0, ...weights.filter((x) => trained.has(x.name)).map((x) => x.m.length));
    const layout = (lend: boolean) => {
      let top = 16;
      const place = (floats: number, count: number, align: number) =>
        Array.from({ length: count }, () => {
          const at = Math.ceil(top / align) * align;
          top = at + Math.ceil(floats / 4) * 16;
          return at;
        });
      const offsets = weights.map(({ name, m: { length: n } }) => {
        if (!trained.has(name)) return { m: place(n, 1, 16), v: place(n, 1, 16), w: [] };
        const align = lend ? LENDABLE_ALIGN : 16;
        const [m, v, w] = lend ? [2, 2, 3] : [1, 1, 2];
        return { m: place(n, m, align), v: place(n, v, align), w: place(n, w, align) };
      });
      return { offsets, scratch: top, end: top + Math.ceil(maxTrained / 4) * 16 };
    };
    // The layout with spares where it fits and a module can have that memory, else the one without.
    const [spared, plain] = [layout(true), layout(false)];
    let ex = useWasm && spared.end <= MAX_BYTES ? HostAdam.instance(spared.end) : null;
    const { offsets, scratch } = ex ? spared : plain;
    ex ??= useWasm ? HostAdam.instance(plain.end) : null;
    this.ex = ex;
    const memory = (this.memory = ex?.memory.buffer ?? null);
    this.scratch = scratch;
    weights.forEach((x, i) => {
      const n = x.m.length;
      // In the module's memory, or plain arrays without a module.
      const held = (at: number[]) =>
        new Held(at.map((o) => (memory ? new Float32Array(memory, o, n) : new Float32Array(n))));
      const o = offsets[i];
      const slot: Slot = {
        m: held(o.m),
        v: held(o.v),
        w: ex && o.w.length ? held(o.w) : null,
        uploaded: null,
      };
      slot.m.current.set(x.m);
      slot.v.current.set(x.v);
      this.slots.set(x.name, slot);
    });
  }

  /** A module instance with at least `bytes` of memory, or null where that cannot be had. */
  private static instance(bytes: number): Exports | null {
    if (bytes > MAX_BYTES) return null;
    try {
      const ex = instantiate<Exports>(ADAM_WASM);
      const pages = Math.ceil(bytes / PAGE) - ex.memory.buffer.byteLength / PAGE;
      if (pages > 0) ex.memory.grow(pages);
      return ex;
    } catch {
      return null; // no WebAssembly SIMD here, or no memory to grow into: the JavaScript loop
    }
  }

  /** Whether the updates run in WebAssembly (false: the JavaScript loop). */
  get simd(): boolean {
    return this.ex !== null;
  }

  /** The moments of `name`, live (the next update writes them, unless they are lent). */
  moments(name: string): { m: Float32Array; v: Float32Array } {
    const s = this.slot(name);
    return { m: s.m.current, v: s.v.current };
  }

  /** The names held, in the order given. */
  names(): string[] {
    return [...this.slots.keys()];
  }

  /**
   * Where `name`'s gradient may be read to (the module's gradient memory, which update() then reads in place), or
   * null when its update runs in JavaScript (give update() the gradient as it is).
   */
  gradientBuffer(name: string): Float32Array | null {
    const s = this.slot(name);
    return this.inModule(s) ? new Float32Array(this.memory!, this.scratch, s.m.current.length) : null;
  }

  /** Whether the slot's weights live in the module's memory (its updates run there). */
  private inModule(s: Slot): boolean {
    return this.memory !== null && s.w !== null && s.w.arrays[0].buffer === this.memory;
  }

  /** The current values of `name` when the variable still holds the tensor the last update uploaded; else null. */
  weights(name: string, dataId: object): Float32Array | null {
    const s = this.slots.get(name);
    return s?.w && s.uploaded === dataId ? s.w.current : null;
  }

  /**
   * Lends `name`'s current weights and moments (as weights() and moments() give them) until giveBack() gets them:
   * the updates write other arrays meanwhile. False (nothing lent) where the slot has no spare arrays, its weights are
   * not the variable's (`dataId`), or it is lent already.
   */
  lend(name: string, dataId: object): boolean {
    const s = this.slots.get(name);
    // A spare array of each (three of weights), not empty (empty arrays share their offsets), not lent already.
    if (s?.w?.arrays.length !== 3 || !s.m.current.length || s.uploaded !== dataId) return false;
    if (s.w.lent >= 0 || s.m.lent >= 0 || s.v.lent >= 0) return false;
    for (const h of [s.w, s.m, s.v]) h.lent = h.cur;
    return true;
  }

  /** Takes back the lent arrays that `views` cover (views of other memory, or of arrays not lent, are ignored). */
  giveBack(views: Iterable<Uint8Array>): void {
    if (!this.memory) return;
    const lent = new Map<string, Held>();
    const key = (a: { byteOffset: number; byteLength: number }) => `${a.byteOffset}+${a.byteLength}`;
    for (const s of this.slots.values()) {
      for (const h of s.w ? [s.w, s.m, s.v] : []) if (h.lent >= 0) lent.set(key(h.arrays[h.lent]), h);
    }
    for (const view of views) {
      const h = view.buffer === this.memory ? lent.get(key(view)) : undefined;
      if (h) h.lent = -1;
    }
  }

  /**
   * One update of `name` by gradient `g`: the moments, and the new weights returned (valid until the next update of
   * `name`). `current` reads the variable's values, called only when the host copy is not valid (`dataId` is not the
   * tensor the last update uploaded). Call uploaded() with the tensor the result becomes.
   */
  update(name: string, g: Float32Array, dataId: object, current: () => Float32Array, k: AdamStep): Float32Array {
    const s = this.slot(name);
    const n = s.m.current.length;
    if (g.length !== n) throw new Error(`optimizer: gradient of ${name} has ${g.length} values, not ${n}`);
    s.w ??= new Held([new Float32Array(n), new Float32Array(n)]); // a weight trained after all
    if (s.uploaded !== dataId) {
      const at = s.w.next(true);
      s.w.arrays[at].set(current());
      s.w.cur = at;
    }
    const [o, mo, vo] = [s.w.next(false), s.m.next(true), s.v.next(true)];
    const [w, m, v] = [s.w.current, s.m.current, s.v.current];
    const [out, mOut, vOut] = [s.w.arrays[o], s.m.arrays[mo], s.v.arrays[vo]];
    if (this.inModule(s)) {
      const memory = this.memory!;
      if (g.buffer !== memory || g.byteOffset !== this.scratch) new Float32Array(memory, this.scratch, n).set(g);
      const { b1, c1, b2, c2, stepSize, eps } = k;
      const at = [m, v, w, out, mOut, vOut].map((a) => a.byteOffset) as [
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      this.ex!.adam(this.scratch, ...at, n, b1, c1, b2, c2, stepSize, eps);
    } else {
      adamUpdateJs(g, m, v, w, out, k, mOut, vOut);
    }
    [s.w.cur, s.m.cur, s.v.cur] = [o, mo, vo];
    s.uploaded = null;
    return out;
  }

  /** The values update(name) returned are now the backend tensor `dataId` (the variable's). */
  uploaded(name: string, dataId: object): void {
    this.slot(name).uploaded = dataId;
  }

  private slot(name: string): Slot {
    const s = this.slots.get(name);
    if (!s) throw new Error(`optimizer: no host moments for ${name}`);
    return s;
  }
}
