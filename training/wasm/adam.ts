// Adam's numerics-2 update on the host (training/optimizers.ts), with WebAssembly SIMD (adam.wat): the same IEEE
// operations in the same order as the JavaScript loop below, so the same bits, at about three times its speed (two
// doubles at a time; 24.2 M weights in 55 ms instead of 160, the mnist-cnn's 225,000 in 0.5 ms instead of 1.5).
//
// Each trained weight keeps, beside its two moments, its current values and a second array the next update writes
// (the two take turns): the weights are read from here, not back from the backend, while the variable still holds
// what the last update uploaded (the same tensor: its dataId), and no array is allocated per step. All of it lives
// in one module instance's memory, sized once for the optimizer's weights. Where that memory cannot hold them (over
// 4 GiB in all), the arrays are plain JavaScript ones and the JavaScript loop updates them: the same bits either way.
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
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  adam(
    g: number,
    m: number,
    v: number,
    w: number,
    o: number,
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

/** The update in JavaScript: m, v in place, the new weights into `out` (w is only read). */
export function adamUpdateJs(
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  w: Float32Array,
  out: Float32Array,
  k: AdamStep,
): void {
  const { b1, c1, b2, c2, stepSize, eps } = k;
  for (let j = 0; j < w.length; j++) {
    const gj = g[j];
    const mj = (m[j] = b1 * m[j] + c1 * gj);
    const vj = (v[j] = b2 * v[j] + c2 * gj * gj);
    out[j] = w[j] - (stepSize * mj) / (Math.sqrt(vj) + eps);
  }
}

interface Slot {
  m: Float32Array;
  v: Float32Array;
  /** The weights: w[cur] the current values, the other one the next update's output. Null until first updated. */
  w: [Float32Array, Float32Array] | null;
  cur: 0 | 1;
  /** The backend tensor (dataId) the current values were uploaded as: the host copy is valid while the variable holds it. */
  uploaded: object | null;
}

/** Adam's host state for a set of weights: moments, and current and next values of the trained ones. */
export class HostAdam {
  private readonly slots = new Map<string, Slot>();
  private readonly ex: Exports | null;
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
    const bytes = (floats: number) => Math.ceil((floats * 4) / 16) * 16;
    const maxTrained = Math.max(0, ...weights.filter((x) => trained.has(x.name)).map((x) => x.m.length));
    const total = weights.reduce((n, x) => n + bytes(x.m.length) * (trained.has(x.name) ? 4 : 2), 16);
    this.ex = useWasm ? HostAdam.instance(total + bytes(maxTrained)) : null;
    // Arrays in the module's memory, one after the other (16-byte aligned), or plain ones without a module.
    let top = 16;
    const array = (floats: number): Float32Array => {
      if (!this.ex) return new Float32Array(floats);
      const a = new Float32Array(this.ex.memory.buffer, top, floats);
      top += bytes(floats);
      return a;
    };
    for (const x of weights) {
      const n = x.m.length;
      const slot: Slot = { m: array(n), v: array(n), w: null, cur: 0, uploaded: null };
      if (this.ex && trained.has(x.name)) slot.w = [array(n), array(n)];
      slot.m.set(x.m);
      slot.v.set(x.v);
      this.slots.set(x.name, slot);
    }
    this.scratch = top;
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

  /** The moments of `name`, live (the next update writes them). */
  moments(name: string): { m: Float32Array; v: Float32Array } {
    return this.slot(name);
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
    return this.inModule(s) ? new Float32Array(this.ex!.memory.buffer, this.scratch, s.m.length) : null;
  }

  /** Whether the slot's weights live in the module's memory (its updates run there). */
  private inModule(s: Slot): boolean {
    return this.ex !== null && s.w !== null && s.w[0].buffer === this.ex.memory.buffer;
  }

  /** The current values of `name` when the variable still holds the tensor the last update uploaded; else null. */
  weights(name: string, dataId: object): Float32Array | null {
    const s = this.slots.get(name);
    return s?.w && s.uploaded === dataId ? s.w[s.cur] : null;
  }

  /**
   * One update of `name` by gradient `g`: the moments in place, and the new weights returned (valid until the next
   * update of `name`). `current` reads the variable's values, called only when the host copy is not valid (`dataId`
   * is not the tensor the last update uploaded). Call uploaded() with the tensor the result becomes.
   */
  update(name: string, g: Float32Array, dataId: object, current: () => Float32Array, k: AdamStep): Float32Array {
    const s = this.slot(name);
    if (g.length !== s.m.length)
      throw new Error(`optimizer: gradient of ${name} has ${g.length} values, not ${s.m.length}`);
    if (!s.w) s.w = [new Float32Array(s.m.length), new Float32Array(s.m.length)]; // a weight trained after all
    if (s.uploaded !== dataId) s.w[s.cur].set(current());
    const next = (1 - s.cur) as 0 | 1;
    const [w, out] = [s.w[s.cur], s.w[next]];
    if (this.inModule(s)) {
      const memory = this.ex!.memory.buffer;
      if (g.buffer !== memory || g.byteOffset !== this.scratch) new Float32Array(memory, this.scratch, g.length).set(g);
      const { b1, c1, b2, c2, stepSize, eps } = k;
      this.ex!.adam(
        this.scratch,
        s.m.byteOffset,
        s.v.byteOffset,
        w.byteOffset,
        out.byteOffset,
        g.length,
        b1,
        c1,
        b2,
        c2,
        stepSize,
        eps,
      );
    } else {
      adamUpdateJs(g, s.m, s.v, w, out, k);
    }
    s.cur = next;
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
