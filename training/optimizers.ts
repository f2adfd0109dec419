// Optimizers written with plain tf ops. Slots live in a Map keyed by stable names
// (opt/adam/m/model/conv1/kernel), so they are saved and restored by name, never by position.
import * as tf from '@tensorflow/tfjs';
import type { OptimizerName, OptimizerSpec } from '../spec/types';
import { readInto, tensorOfCopy } from './kernels/tensorflow';
import type { NumericsVersion } from './numerics';
import './tfjs-quiet';
import { HostAdam } from './wasm/adam';

export interface ParamRef {
  name: string;
  shape: number[];
  variable: tf.Variable;
}

export interface SlotSpec {
  name: string;
  shape: number[];
}

/** One optimizer slot's current values (possibly the live array the next update writes). */
export interface SlotValues {
  name: string;
  shape: number[];
  values: Float32Array;
}

export abstract class Optimizer {
  /** Updates applied so far (Adam's bias correction uses it). Saved as opt/<name>/iterations. */
  iterations = 0;
  /** The gradient math (numerics.ts); the trainer sets it. Adam computes its update on the host under 2. */
  numerics: NumericsVersion = 1;
  protected readonly slots = new Map<string, tf.Variable>();
  protected disposed = false;

  constructor(
    readonly name: OptimizerName,
    protected readonly params: ParamRef[],
    slotKinds: string[],
  ) {
    for (const kind of slotKinds) {
      for (const p of params) {
        this.slots.set(
          this.slotName(kind, p.name),
          tf.tidy(() => tf.variable(tf.zeros(p.shape, 'float32'), false)),
        );
      }
    }
  }

  get iterationsName(): string {
    return `opt/${this.name}/iterations`;
  }

  protected slotName(kind: string, paramName: string): string {
    return `opt/${this.name}/${kind}/${paramName}`;
  }

  protected slot(kind: string, paramName: string): tf.Variable {
    const v = this.slots.get(this.slotName(kind, paramName));
    if (!v) throw new Error(`optimizer: no slot ${this.slotName(kind, paramName)}`);
    return v;
  }

  /** Slot variables by stable name, in a fixed order, holding the current values. */
  slotEntries(): Array<[string, tf.Variable]> {
    return [...this.slots.entries()];
  }

  /**
   * The slots' current values by stable name, in slotEntries() order, as arrays that may be live: the next update
   * may write them, so a snapshot copies them before training goes on.
   */
  slotValues(): SlotValues[] {
    return [...this.slots.entries()].map(([name, v]) => ({
      name,
      shape: v.shape.slice(),
      values: v.dataSync() as Float32Array,
    }));
  }

  /** Applies one update with learning rate `lr`. `grads` maps stable parameter names to gradients. */
  apply(grads: Map<string, tf.Tensor>, lr: number, frozen?: ReadonlySet<string>): void {
    if (this.disposed) throw new Error('optimizer: disposed');
    const t = this.iterations + 1;
    tf.tidy(() => {
      for (const p of this.params) {
        if (frozen?.has(p.name)) continue; // weights and slots stay exactly as they are
        const g = grads.get(p.name);
        if (!g) throw new Error(`optimizer: no gradient for ${p.name}`);
        this.update(p, g, lr, t);
      }
    });
    this.iterations = t;
  }

  protected abstract update(p: ParamRef, g: tf.Tensor, lr: number, t: number): void;

  /**
   * The weight's current values where the optimizer holds them on the host (no read back from the backend), else
   * null. Read-only, and valid until the next update.
   */
  hostWeights(p: ParamRef): Float32Array | null {
    void p;
    return null;
  }

  /** The weight's current values: the host copy where there is one, else read from the backend. Read-only. */
  weightValues(p: ParamRef): Float32Array {
    return this.hostWeights(p) ?? (p.variable.dataSync() as Float32Array);
  }

  /**
   * Lends the current host arrays of `params` (a weight's values, as weightValues() gives them, and its slots', as
   * slotValues() does): until giveBack() gets them, no update writes them, so a checkpoint may read them in place.
   * Returns the names (weights' and slots') whose values were lent: those held on the host, not lent already.
   */
  lend(params: ParamRef[]): Set<string> {
    void params;
    return new Set();
  }

  /** Takes back what lend() lent and `views` cover (the arrays a checkpoint read); other views are ignored. */
  giveBack(views: Iterable<Uint8Array>): void {
    void views;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.slots.values()) v.dispose();
    this.slots.clear();
  }
}

class Sgd extends Optimizer {
  constructor(params: ParamRef[]) {
    super('sgd', params, []);
  }
  protected update(p: ParamRef, g: tf.Tensor, lr: number): void {
    p.variable.assign(tf.sub(p.variable, tf.mul(tf.scalar(lr), g)));
  }
}

/** Heavy-ball momentum as in tf.train.momentum: v = mu*v + g; w -= lr*v. */
class Momentum extends Optimizer {
  constructor(
    params: ParamRef[],
    private readonly momentum: number,
  ) {
    super('momentum', params, ['velocity']);
  }
  protected update(p: ParamRef, g: tf.Tensor, lr: number): void {
    const v = this.slot('velocity', p.name);
    const nv = tf.add(tf.mul(tf.scalar(this.momentum), v), g);
    v.assign(nv);
    p.variable.assign(tf.sub(p.variable, tf.mul(tf.scalar(lr), nv)));
  }
}

/** Adam (Kingma & Ba) with the bias correction folded into the step size, computed in JS doubles. */
class Adam extends Optimizer {
  // The constant scalars, made once rather than per weight and step (each is a tensor upload on tfjs-node).
  private readonly k: Record<'beta1' | 'oneMinusBeta1' | 'beta2' | 'oneMinusBeta2' | 'epsilon', tf.Tensor>;
  private stepSize: { t: number; lr: number; value: tf.Tensor } | null = null;

  constructor(
    params: ParamRef[],
    private readonly beta1: number,
    private readonly beta2: number,
    private readonly epsilon: number,
  ) {
    super('adam', params, ['m', 'v']);
    this.k = {
      beta1: tf.keep(tf.scalar(beta1)),
      oneMinusBeta1: tf.keep(tf.scalar(1 - beta1)),
      beta2: tf.keep(tf.scalar(beta2)),
      oneMinusBeta2: tf.keep(tf.scalar(1 - beta2)),
      epsilon: tf.keep(tf.scalar(epsilon)),
    };
  }
  // Numerics 2: the update on the host, one pass over each weight (training/wasm/adam.ts), instead of 12 backend ops per
  // weight (on the tensorflow backend each op is a dispatch through its thread pool and a new buffer: about a sixth of
  // a step). The moments live there as float32 arrays (copied from the slot variables at the first update after
  // construction or restore, back into them when slotEntries() is asked for a snapshot), and so do the weights the last
  // update uploaded; intermediates are float64, each stored value is rounded to float32. Deterministic: the same IEEE
  // operations in the same order on every machine.
  private host: HostAdam | null = null;

  override apply(grads: Map<string, tf.Tensor>, lr: number, frozen?: ReadonlySet<string>): void {
    if (this.numerics !== 2) return super.apply(grads, lr, frozen);
    if (this.disposed) throw new Error('optimizer: disposed');
    const t = this.iterations + 1;
    const todo = this.params.filter((p) => !frozen?.has(p.name));
    this.host ??= new HostAdam(
      this.params.map((p) => ({
        name: p.name,
        m: this.slot('m', p.name).dataSync() as Float32Array,
        v: this.slot('v', p.name).dataSync() as Float32Array,
      })),
      new Set(todo.map((p) => p.name)),
    );
    const host = this.host;
    const gs = todo.map((p) => {
      const g = grads.get(p.name);
      if (!g) throw new Error(`optimizer: no gradient for ${p.name}`);
      return g;
    });
    const k = {
      b1: this.beta1,
      c1: 1 - this.beta1,
      b2: this.beta2,
      c2: 1 - this.beta2,
      stepSize: this.stepSizeAt(lr, t),
      eps: this.epsilon,
    };
    todo.forEach((p, i) => {
      // Read straight into the module's memory where the update runs there (no array per read).
      const into = host.gradientBuffer(p.name);
      if (into) readInto(gs[i], into);
      const g = into ?? (gs[i].dataSync() as Float32Array);
      const next = host.update(p.name, g, p.variable.dataId, () => p.variable.dataSync() as Float32Array, k);
      const value = tensorOfCopy(next, p.shape);
      p.variable.assign(value);
      value.dispose();
      host.uploaded(p.name, p.variable.dataId);
    });
    this.iterations = t;
  }

  /** The weight's values from the host, when the last update wrote them and the variable still holds them. */
  override hostWeights(p: ParamRef): Float32Array | null {
    return this.host?.weights(p.name, p.variable.dataId) ?? null;
  }

  override lend(params: ParamRef[]): Set<string> {
    const names = new Set<string>();
    for (const p of params) {
      if (!this.host?.lend(p.name, p.variable.dataId)) continue;
      for (const name of [p.name, this.slotName('m', p.name), this.slotName('v', p.name)]) names.add(name);
    }
    return names;
  }

  override giveBack(views: Iterable<Uint8Array>): void {
    this.host?.giveBack(views);
  }

  /** The learning rate with Adam's bias correction at update t, in doubles (both numerics versions). */
  private stepSizeAt(lr: number, t: number): number {
    return (lr * Math.sqrt(1 - Math.pow(this.beta2, t))) / (1 - Math.pow(this.beta1, t));
  }

  /** Under numerics 2 the moments are the host arrays themselves (no round trip through the slot variables). */
  override slotValues(): SlotValues[] {
    const host = this.host;
    if (!host) return super.slotValues();
    const byName = new Map<string, Float32Array>();
    for (const param of host.names()) {
      const { m, v } = host.moments(param);
      byName.set(this.slotName('m', param), m);
      byName.set(this.slotName('v', param), v);
    }
    return [...this.slots.entries()].map(([name, variable]) => {
      const values = byName.get(name);
      if (!values) throw new Error(`optimizer: no host moments for slot ${name}`);
      return { name, shape: variable.shape.slice(), values };
    });
  }

  override slotEntries(): Array<[string, tf.Variable]> {
    if (this.host) {
      for (const name of this.host.names()) {
        const { m, v } = this.host.moments(name);
        tf.tidy(() => {
          this.slot('m', name).assign(tf.tensor(m.slice(), this.slot('m', name).shape, 'float32'));
          this.slot('v', name).assign(tf.tensor(v.slice(), this.slot('v', name).shape, 'float32'));
        });
      }
    }
    return super.slotEntries();
  }

  protected update(p: ParamRef, g: tf.Tensor, lr: number, t: number): void {
    const k = this.k;
    const m = this.slot('m', p.name);
    const v = this.slot('v', p.name);
    const nm = tf.add(tf.mul(k.beta1, m), tf.mul(k.oneMinusBeta1, g));
    const nv = tf.add(tf.mul(k.beta2, v), tf.mul(k.oneMinusBeta2, tf.square(g)));
    m.assign(nm);
    v.assign(nv);
    if (!this.stepSize || this.stepSize.t !== t || this.stepSize.lr !== lr) {
      this.stepSize?.value.dispose();
      this.stepSize = { t, lr, value: tf.keep(tf.scalar(this.stepSizeAt(lr, t))) };
    }
    const delta = tf.div(tf.mul(this.stepSize.value, nm), tf.add(tf.sqrt(nv), k.epsilon));
    p.variable.assign(tf.sub(p.variable, delta));
  }
  override dispose(): void {
    super.dispose();
    tf.dispose(Object.values(this.k));
    this.stepSize?.value.dispose();
    this.stepSize = null;
  }
}

function inRange(v: number, lo: number, hi: number, what: string): number {
  if (!(typeof v === 'number' && v >= lo && v < hi))
    throw new Error(`optimizer.${what} must be in [${lo}, ${hi}), got ${v}`);
  return v;
}

export function createOptimizer(spec: OptimizerSpec, params: ParamRef[]): Optimizer {
  if (!(typeof spec.learningRate === 'number' && spec.learningRate > 0 && Number.isFinite(spec.learningRate))) {
    throw new Error(`optimizer.learningRate must be a positive number, got ${spec.learningRate}`);
  }
  switch (spec.name) {
    case 'sgd':
      return new Sgd(params);
    case 'momentum':
      return new Momentum(params, inRange(spec.momentum ?? 0.9, 0, 1, 'momentum'));
    case 'adam':
      return new Adam(
        params,
        inRange(spec.beta1 ?? 0.9, 0, 1, 'beta1'),
        inRange(spec.beta2 ?? 0.999, 0, 1, 'beta2'),
        inRange(spec.epsilon ?? 1e-7, Number.MIN_VALUE, 1, 'epsilon'),
      );
    default:
      throw new Error(
        `unknown optimizer ${JSON.stringify((spec as OptimizerSpec).name)} (available: sgd, momentum, adam)`,
      );
  }
}
