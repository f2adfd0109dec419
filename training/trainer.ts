// The step loop. One Trainer owns a model, an optimizer, a schedule, the PRNG and the data order of the
// current epoch; snapshot() captures all of it as named bytes plus a small JSON state, and
// fromSnapshot() continues bit for bit where the snapshot was taken (same backend).
// Over 400 lines on purpose: the step, its epoch end and the snapshot share the trainer's private state. What needs
// none of it lives beside: losses.ts, evaluate.ts, snapshot-io.ts, trainer-types.ts.
import { createHash } from 'crypto';
import { performance } from 'perf_hooks';
import * as tf from '@tensorflow/tfjs';
import type { RunSpec } from '../spec/types';
import { randomShift } from './augment';
import { IMAGE_WIDTH } from './datasets';
import { assertFiniteBlobs, ConfigError, NonFiniteError } from './errors';
import { MODEL_CHECKS } from './preflight';
import { preprocessingOf } from './preprocess';
import { checkModelFit } from '../spec/model-fit';
import { replicasOf } from '../spec/helpers';
import { maxModelBytes } from './model-limit';
import { buildNet, type Net, type StateUpdates } from './models';
import { loadTaskData, type TaskData } from './task-data';
import { createOptimizer, type Optimizer } from './optimizers';
import { Prng } from './prng';
import { LrSchedule } from './schedules';
import { EVAL_BATCH, evalBatch, evalOf, evalRows, examples, type SplitName } from './evaluate';
import { argmaxRow, newEvalAcc, regressionLossTensor, sigmoidCrossEntropy, softmaxCrossEntropy } from './losses';
import { byName, bytesOf, checkLittleEndian, checkState, rowsThatDiffer, takeTensors } from './snapshot-io';
import { DIST_PREFIX } from './replicas';
import {
  batchBounds,
  changeTopology,
  planOf,
  recordedReplicas,
  sliceRanges,
  totalStepsOf,
  TopologyError,
  topologyRefusal,
  type EpochPlan,
  type Topology,
} from './topology';
import { clipGradients } from './clip';
import { defaultNumerics, restoreDecision, type NumericsVersion } from './numerics';
import * as fingerprints from './model-fingerprint';
import { applyConstraints, penaltyLoss } from './penalties';
import {
  DATA_ORDER_NAME,
  type EvalResult,
  type NamedTensorBytes,
  type StepProgress,
  type TrainerInfo,
  type TrainerSnapshot,
  type TrainerState,
  type TrainResult,
} from './trainer-types';

export * from './trainer-types';

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Parts {
  spec: RunSpec;
  data: TaskData;
  net: Net;
  opt: Optimizer;
  stepsPerEpoch: number;
  totalSteps: number;
  shift: number;
  /** The replica this trainer is (0 unless spec.distributed) and the spec's replica count. */
  replica: number;
  replicas: number;
  /** spec.classWeights by class index (float32 values), or null: every example weighs 1. */
  classWeights: Float32Array | null;
}

/**
 * spec.classWeights by class index (binary: by label, classes "0" and "1"); a name that is not a class is refused
 * naming the classes.
 */
function classWeightsOf(spec: RunSpec, data: TaskData): Float32Array | null {
  const cw = spec.classWeights;
  if (cw === undefined || data.task === 'regression') return null;
  const classes = data.classes ?? [];
  const w = new Float32Array(classes.length).fill(1);
  if (cw === 'balanced') {
    const counts = new Array<number>(classes.length).fill(0);
    for (let i = 0; i < data.train.n; i++) counts[data.train.y[i]] += 1;
    counts.forEach((c, k) => (w[k] = c === 0 ? 0 : data.train.n / (classes.length * c)));
    return w;
  }
  for (const [name, value] of Object.entries(cw)) {
    const k = classes.indexOf(name);
    if (k < 0)
      throw new ConfigError(
        `classWeights: ${JSON.stringify(name)} is not a class of ${data.name} (classes: ${classes.join(', ')})`,
      );
    w[k] = value;
  }
  return w;
}

/**
 * The share of a batch's rows whose prediction is its label: the argmax of its C outputs, or for a binary run (one
 * logit) whether it is above 0.
 */
function batchAccuracy(outputs: Float32Array, labels: Int32Array, count: number, C: number, binary: boolean): number {
  let correct = 0;
  for (let k = 0; k < count; k++) {
    const predicted = binary ? (outputs[k] > 0 ? 1 : 0) : argmaxRow(outputs, k, C);
    if (predicted === labels[k]) correct++;
  }
  return correct / count;
}

function positiveInt(v: unknown, what: string): number {
  if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1))
    throw new Error(`${what} must be an integer >= 1, got ${v}`);
  return v;
}

async function prepare(spec: RunSpec, replica = 0): Promise<Parts> {
  const epochs = positiveInt(spec.epochs, 'epochs');
  const batchSize = positiveInt(spec.batchSize, 'batchSize');
  const data = await loadTaskData(spec);
  const classWeights = classWeightsOf(spec, data);
  const shift = spec.augment?.shift ?? 0;
  if (!(Number.isInteger(shift) && shift >= 0 && shift < IMAGE_WIDTH))
    throw new Error(`augment.shift must be an integer in [0, 27], got ${shift}`);
  if (shift > 0 && !data.images) throw new ConfigError(`augment.shift applies to image data only; ${data.name} is not`);
  const replicas = replicasOf(spec);
  const stepsPerEpoch = planOf(undefined, 0, data.train.n, replicas, replica, batchSize).steps;
  // Refused before anything is allocated: a layer that cannot be built, or a model that would not fit in memory.
  checkModelFit(spec, data.featureShape, maxModelBytes(tf.getBackend()));
  const net = await buildNet(spec, data.featureShape, data.outputs);
  let opt: Optimizer;
  try {
    // The checks start and startTraining made before the run began, again for callers that bypass them.
    for (const check of MODEL_CHECKS) await check({ spec, data, net });
    opt = createOptimizer(spec.optimizer, net.params);
  } catch (e) {
    net.dispose();
    throw e;
  }
  const totalSteps = epochs * stepsPerEpoch;
  return { spec, data, net, opt, stepsPerEpoch, totalSteps, shift, replica, replicas, classWeights };
}

/**
 * A snapshot's state laid out for the spec's replica count: unchanged when the count is the one it was trained with,
 * else (with resume.allowTopologyChange) re-laid by topology.ts's rule; and the run's steps counted accordingly.
 */
function relaid(spec: RunSpec, state: TrainerState, p: Parts, topologyFrom?: number): { st: TrainerState; p: Parts } {
  let st = state;
  if (topologyFrom !== undefined && topologyFrom !== p.replicas) {
    if (!spec.resume?.allowTopologyChange) throw new TopologyError(topologyRefusal(topologyFrom, p.replicas));
    const was = st.topology ? st : { ...st, distributed: { replicas: topologyFrom } };
    st = changeTopology(was, p.replicas, p.data.train.n, spec.batchSize, spec.epochs);
  }
  if (!st.topology) return { st, p };
  if (recordedReplicas(st) !== p.replicas) throw new TopologyError(topologyRefusal(recordedReplicas(st), p.replicas));
  return { st, p: { ...p, totalSteps: totalStepsOf(st.topology, spec.epochs, p.stepsPerEpoch) } };
}

/** A replica of a distributed run (spec.distributed): which shard it trains, and whether it leaves epoch ends open. */
export interface ReplicaOptions {
  /** The replica index: the shard of each epoch's order it trains on (default 0). */
  replica?: number;
  /**
   * Stop after the last step of an epoch without evaluating or drawing the next order: a replica's weights are not
   * the run's; the round's combination finishes the epoch (completeEpoch) on the combined weights.
   */
  deferEpochEnd?: boolean;
  /**
   * The gradient math to compute with (numerics.ts); default: this process's for its backend (DURABLE_TRAIN_NUMERICS,
   * else 2 on tensorflow, 1 elsewhere). A snapshot recorded under another version is refused unless the spec's
   * resume.allowNumericsChange (or allowBackendChange) accepts it.
   */
  numerics?: NumericsVersion;
  /**
   * The replica count the snapshot was trained with, when it may differ from the spec's (a resume or fork of a
   * checkpoint): a different count re-lays the data out (topology.ts), allowed only with resume.allowTopologyChange.
   */
  topologyFrom?: number;
  /**
   * The snapshot of a run that ended already holds the next epoch's order (a replica's, drawn from the run stream for
   * all replicas): do not draw another.
   */
  orderDrawn?: boolean;
}

export interface SnapshotOptions extends ReplicaOptions {
  freshOptimizer?: boolean;
  freshSchedule?: boolean;
  learningRate?: number | null;
}

export class Trainer {
  readonly info: TrainerInfo;
  private readonly spec: RunSpec;
  private readonly data: TaskData;
  private readonly net: Net;
  private readonly opt: Optimizer;
  private readonly shift: number;
  private readonly stepsPerEpoch: number;
  private readonly totalSteps: number;
  private readonly replica: number;
  private readonly replicas: number;
  /** Set once the replica count has changed in the run's history (topology.ts); undefined otherwise. */
  private topology: Topology | undefined;
  /** This trainer's share of the current epoch: the positions of the order it trains, in how many steps. */
  private plan!: EpochPlan;
  private readonly classWeights: Float32Array | null;
  private readonly deferEpochEnd: boolean;
  /** How the model's fingerprint is computed (model-fingerprint.ts): a run goes on with the version it started with. */
  private fingerprintVersion = fingerprints.FINGERPRINT_VERSION;
  private schedule: LrSchedule;
  private rng: Prng;
  private order: Int32Array;
  private step = 0;
  private epoch = 0;
  private batchInEpoch = 0;
  private metrics: TrainerState['metrics'] = {
    lastLoss: null,
    lastAccuracy: null,
    evals: [],
    best: { loss: null, accuracy: null },
  };
  /** Set while a step (with its epoch-end evaluation) is in flight: weights and counters may disagree. */
  private readonly frozen: ReadonlySet<string>;
  private busy = false;
  private running = false;
  private disposed = false;
  private failure: Error | null = null;

  private constructor(
    p: Parts,
    schedule: LrSchedule,
    rng: Prng,
    order: Int32Array,
    numerics: NumericsVersion,
    deferEpochEnd = false,
  ) {
    this.spec = p.spec;
    p.net.numerics = numerics;
    p.opt.numerics = numerics;
    this.replica = p.replica;
    this.replicas = p.replicas;
    this.classWeights = p.classWeights;
    this.deferEpochEnd = deferEpochEnd;
    // Stable parameter names (model/<layer>/<weight>) of the layers the spec freezes.
    this.frozen = new Set(
      p.net.params.filter((q) => (p.spec.freeze ?? []).includes(q.name.split('/')[1])).map((q) => q.name),
    );
    this.data = p.data;
    this.net = p.net;
    this.opt = p.opt;
    this.shift = p.shift;
    this.stepsPerEpoch = p.stepsPerEpoch;
    this.totalSteps = p.totalSteps;
    this.schedule = schedule;
    this.rng = rng;
    this.order = order;
    this.plan = this.planFor(0);
    this.info = {
      backend: tf.getBackend(),
      datasetFingerprint: p.data.fingerprint,
      modelFingerprint: p.net.fingerprint,
      parameterCount: p.net.parameterCount,
      numerics,
    };
  }

  /** A fresh run: weights, then the first epoch's order, drawn from spec.seed. */
  static async create(spec: RunSpec, opts: ReplicaOptions = {}): Promise<Trainer> {
    await tf.ready();
    const p = await prepare(spec, opts.replica);
    try {
      const rng = Prng.fromSeed(spec.seed);
      // A model that brings its weights (model.json) starts from them; every other from the run's seed.
      if (!p.net.pretrained) p.net.initialize(rng);
      const schedule = LrSchedule.create(spec.schedule, spec.optimizer.learningRate);
      const order = rng.permutation(p.data.train.n);
      const numerics = opts.numerics ?? defaultNumerics(tf.getBackend());
      return new Trainer(p, schedule, rng, order, numerics, opts.deferEpochEnd);
    } catch (e) {
      p.opt.dispose();
      p.net.dispose();
      throw e;
    }
  }

  /**
   * Continues from a snapshot. Throws an Error naming any missing, unexpected or mismatched tensor.
   * `opts` serve a fork that changes the update rule at this point: `freshOptimizer` starts the spec's optimizer from
   * zero slots (the snapshot's slots, of another optimizer, are left out), `freshSchedule` starts the spec's schedule
   * anew with the snapshot's base rate, and `learningRate` sets the base rate from here on (recorded as an override).
   */
  static async fromSnapshot(spec: RunSpec, snap: TrainerSnapshot, opts: SnapshotOptions = {}): Promise<Trainer> {
    checkLittleEndian();
    await tf.ready();
    if (!snap || !Array.isArray(snap.tensors) || !snap.state) throw new Error('snapshot: expected { tensors, state }');
    const prepared = await prepare(spec, opts.replica);
    try {
      const { st, p } = relaid(spec, snap.state, prepared, opts.topologyFrom);
      checkState(st, p.stepsPerEpoch, p.totalSteps, opts.deferEpochEnd);
      const { numerics, refusal } = restoreDecision(st, tf.getBackend(), spec, opts.numerics);
      if (refusal) throw new Error(`snapshot: ${refusal}`);
      // A distributed round's checkpoint also holds the other replicas' slots and the outer optimizer's state.
      const fpVersion = fingerprints.recordedFingerprintVersion(st);
      const mine = snap.tensors.filter((t) => !t.name.startsWith(DIST_PREFIX));
      const own = fpVersion === 1 ? fingerprints.renameLegacyTensors(mine, p.net.all) : mine;
      const { assignments, iterations, order } = takeTensors(p.net, p.opt, own, p.data.train.n, opts);
      const n = p.data.train.n;
      const rng = Prng.fromState(st.rng);
      let schedule: LrSchedule;
      if (opts.freshSchedule) {
        const base = (st.schedule as { baseLearningRate?: number } | null)?.baseLearningRate;
        schedule = LrSchedule.create(spec.schedule, base ?? spec.optimizer.learningRate);
      } else schedule = LrSchedule.fromState(spec.schedule, st.schedule);
      if (opts.learningRate != null) schedule.setLearningRate(opts.learningRate, st.step);

      for (const [v, values, shape] of assignments) tf.tidy(() => v.assign(tf.tensor(values, shape, 'float32')));
      p.opt.iterations = iterations;
      // The end of the last epoch of a shorter run drew no order for a next epoch; a longer spec (a fork or restart
      // with more epochs) draws it now, from the same random state, as an uninterrupted longer run would have.
      // (Judged on the snapshot as it was written: a re-laid state counts its steps anew. A replica's next order is
      // drawn once for all replicas from the run stream, before their streams part: `orderDrawn`.)
      const ended = snap.state.step === snap.state.totalSteps && !opts.orderDrawn;
      const epochOrder = ended && st.step < p.totalSteps ? rng.permutation(n) : order;
      const t = new Trainer(p, schedule, rng, epochOrder, numerics, opts.deferEpochEnd);
      t.topology = st.topology;
      t.fingerprintVersion = fpVersion;
      if (fpVersion === 1) t.info.modelFingerprint = p.net.legacyFingerprint();
      t.step = st.step;
      t.epoch = st.epoch;
      t.batchInEpoch = st.batchInEpoch;
      t.plan = t.planFor(st.epoch);
      t.metrics = JSON.parse(JSON.stringify(st.metrics)) as TrainerState['metrics'];
      if (!t.metrics || !Array.isArray(t.metrics.evals) || !t.metrics.best)
        throw new Error('snapshot state: malformed metrics');
      return t;
    } catch (e) {
      prepared.opt.dispose();
      prepared.net.dispose();
      throw e;
    }
  }

  get done(): boolean {
    return this.step >= this.totalSteps || this.stoppedEarly;
  }

  /**
   * Early stopping has ended the run: the watched validation metric went `patience` + 1 epochs without improving.
   * Judged with the spec at hand, so a fork without early stopping (or with more patience) continues past it.
   */
  get stoppedEarly(): boolean {
    const es = this.spec.earlyStopping;
    const st = this.metrics.earlyStopping;
    return !!es && !!st && st.wait > (es.patience ?? 0);
  }

  /** The last step of an epoch ran and its end (evaluation, next order) waits for completeEpoch (deferEpochEnd). */
  get epochEndPending(): boolean {
    return this.batchInEpoch === this.plan.steps;
  }

  /** Steps left before the current epoch ends (0 when its end is pending). */
  get stepsLeftInEpoch(): number {
    return this.plan.steps - this.batchInEpoch;
  }

  /** The examples (row indices of the training split) the next step trains on, in order; empty at an epoch's end. */
  nextBatchExamples(): Int32Array {
    return this.epochEndPending ? new Int32Array(0) : this.batchExamples();
  }

  private planFor(epoch: number): EpochPlan {
    return planOf(this.topology, epoch, this.data.train.n, this.replicas, this.replica, this.spec.batchSize);
  }

  /** The examples the next step trains on: the epoch order's entries at this trainer's next batch of positions. */
  private batchExamples(): Int32Array {
    const [lo, hi] = batchBounds(this.plan, this.batchInEpoch);
    const out = new Int32Array(hi - lo);
    let k = 0;
    for (const [s, e] of sliceRanges(this.plan.ranges, lo, hi)) {
      out.set(this.order.subarray(s, e), k);
      k += e - s;
    }
    return out;
  }

  /** Finishes a deferred epoch end: evaluates, feeds the schedule, draws the next order. Null when none is pending. */
  async completeEpoch(
    onEvalProgress?: (p: { evaluated: number; total: number }) => void | Promise<void>,
  ): Promise<EvalResult | null> {
    this.assertUsable();
    if (!this.epochEndPending) return null;
    if (this.running) throw new Error('completeEpoch: train() is running');
    return this.endEpoch(onEvalProgress);
  }

  /** Where training stands, cheaply (no copies): for a heartbeat before the first step of a chunk. */
  get position(): {
    step: number;
    totalSteps: number;
    epoch: number;
    learningRate: number;
    lastLoss: number | null;
    lastAccuracy: number | null;
  } {
    return {
      step: this.step,
      totalSteps: this.totalSteps,
      epoch: this.epoch,
      learningRate: this.schedule.learningRate(this.step, this.totalSteps),
      lastLoss: this.metrics.lastLoss,
      lastAccuracy: this.metrics.lastAccuracy,
    };
  }

  get state(): TrainerState {
    return {
      step: this.step,
      epoch: this.epoch,
      batchInEpoch: this.batchInEpoch,
      stepsPerEpoch: this.stepsPerEpoch,
      totalSteps: this.totalSteps,
      rng: this.rng.getState(),
      schedule: this.schedule.getState(this.step, this.totalSteps),
      learningRate: this.schedule.learningRate(this.step, this.totalSteps),
      featureShape: this.data.featureShape.slice(),
      numerics: this.info.numerics,
      fingerprintVersion: this.fingerprintVersion,
      preprocessing: preprocessingOf(this.spec, this.data),
      ...(typeof this.spec.model === 'object' && 'registered' in this.spec.model
        ? { modelTopology: this.net.model.toJSON(undefined, false) }
        : {}),
      metrics: JSON.parse(JSON.stringify(this.metrics)) as TrainerState['metrics'],
      ...(this.topology ? { topology: JSON.parse(JSON.stringify(this.topology)) as Topology } : {}),
    };
  }

  /** The tf.layers model holding the live weights (for export with model.save). Do not dispose it. */
  get layersModel(): tf.LayersModel {
    this.assertUsable();
    return this.net.model;
  }

  /**
   * Everything needed to continue exactly, synchronously: a deep copy, except what `lend` lets the optimizer lend.
   * With `lend`, the weights and slots the optimizer holds on the host (Adam under numerics 2) are its own arrays, read
   * in place: no update writes them until a later snapshot gets this one as `reuse` (they are given back then). A lent
   * snapshot's buffers must not be written, nor kept past that.
   */
  snapshot(opts: { reuse?: TrainerSnapshot; lend?: boolean } = {}): TrainerSnapshot {
    checkLittleEndian();
    this.assertUsable();
    if (this.busy) throw new Error('trainer: snapshot() during a step; call it from onStep or after train() resolves');
    // Every tensor not lent is copied (weights and moments are live arrays the next step replaces or writes in place).
    // Into the buffers of `reuse` where a name and size match: a snapshot whose persist has ended, handed back so the
    // copy lands in memory already mapped instead of fresh pages (and memory stays flat over many commits).
    const spare = new Map((opts.reuse?.tensors ?? []).map((t) => [t.name, t.data]));
    // What `reuse` borrowed comes back; its bytes stay as they are until the next update, so they are still compared.
    if (opts.reuse) this.opt.giveBack(spare.values());
    const lent = opts.lend ? this.opt.lend(this.net.all) : new Set<string>();
    // Before the copy overwrites the earlier snapshot's bytes, the rows that differ from them are noted: a checkpoint
    // then stores only those (an embedding table trained on a few ids changes a few rows).
    const copy = (
      name: string,
      shape: number[],
      a: Float32Array | Int32Array,
    ): Omit<NamedTensorBytes, 'name' | 'dtype'> => {
      const src = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      const into = spare.get(name);
      const same = into?.byteLength === src.byteLength;
      const changedRows = same && shape.length >= 2 ? rowsThatDiffer(into!, src, shape[0]) : undefined;
      const rows = changedRows ? { changedRows } : {};
      if (lent.has(name)) return { shape, data: src, ...rows };
      // (Not into a lent array just given back: the optimizer writes it again.)
      if (!same || into!.buffer instanceof SharedArrayBuffer) return { shape, data: bytesOf(a) };
      into!.set(src);
      return { shape, data: into!, ...rows };
    };
    const tensors: NamedTensorBytes[] = [];
    for (const p of [...this.net.all].sort(byName)) {
      tensors.push({
        name: p.name,
        dtype: 'float32',
        ...copy(p.name, p.shape.slice(), this.opt.weightValues(p)),
      });
    }
    for (const { name, shape, values } of this.opt.slotValues()) {
      tensors.push({ name, dtype: 'float32', ...copy(name, shape, values) });
    }
    tensors.push({
      name: this.opt.iterationsName,
      dtype: 'int32',
      shape: [],
      data: bytesOf(Int32Array.of(this.opt.iterations)),
    });
    tensors.push({
      name: DATA_ORDER_NAME,
      dtype: 'int32',
      shape: [this.order.length],
      data: copy(DATA_ORDER_NAME, [this.order.length], this.order).data,
    });
    return { tensors, state: this.state };
  }

  /**
   * Throws a NonFiniteError naming the first weight or optimizer slot of `snap` that holds a NaN or an infinity: a
   * checkpoint is checked before it is committed, so the newest checkpoint is always the last finite one.
   */
  static checkFinite(snap: TrainerSnapshot): void {
    assertFiniteBlobs(snap.tensors, snap.state.step, snap.state.learningRate);
  }

  setLearningRate(lr: number): void {
    this.assertUsable();
    this.schedule.setLearningRate(lr, this.step);
  }

  /** sha256 hex over the model weights: names sorted, each weight's float32 little-endian bytes in turn. */
  weightsSha256(): string {
    checkLittleEndian();
    this.assertUsable();
    const h = createHash('sha256');
    for (const p of [...this.net.all].sort(byName)) {
      const v = this.opt.weightValues(p);
      h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    }
    return h.digest('hex');
  }

  /**
   * Loss and accuracy (classification, binary) or mae/mse (regression), and spec.metrics, on a split (default test); batched, no randomness.
   * The validation split is cut to evaluation.maxRows as at epoch ends.
   */
  evaluate(split: SplitName = 'test'): Omit<EvalResult, 'epoch' | 'step'> {
    this.assertUsable();
    const rows = evalRows(this.data, split, this.spec);
    const acc = newEvalAcc();
    for (let start = 0; start < rows.n; start += EVAL_BATCH)
      evalBatch(this.net, this.data, rows, this.spec.loss, start, acc);
    return evalOf(this.data, rows, acc, this.spec.metrics);
  }

  /** Whether the run has a validation split: then it makes every choice and the test split is evaluated at the end. */
  get hasValidation(): boolean {
    return this.data.validation !== null;
  }

  /** Like evaluate(), yielding to the event loop between batches. */
  private async evaluateYielding(
    split: SplitName,
    onProgress?: (p: { evaluated: number; total: number }) => void | Promise<void>,
  ): Promise<Omit<EvalResult, 'epoch' | 'step'>> {
    const rows = evalRows(this.data, split, this.spec);
    const acc = newEvalAcc();
    const total = rows.n;
    for (let start = 0; start < total; start += EVAL_BATCH) {
      await yieldToEventLoop();
      this.assertUsable();
      evalBatch(this.net, this.data, rows, this.spec.loss, start, acc);
      if (onProgress) await onProgress({ evaluated: Math.min(total, start + EVAL_BATCH), total });
    }
    return evalOf(this.data, rows, acc, this.spec.metrics);
  }

  async train(opts: {
    maxSteps: number;
    onStep?: (p: StepProgress) => void | Promise<void>;
    shouldStop?: () => boolean;
    /**
     * Called after each test batch of an epoch-end evaluation, which runs inside the step that ends the
     * epoch and can take a while (full test split, cpu backend): a chance to heartbeat. snapshot() is
     * not allowed here (the step is not complete).
     */
    onEvalProgress?: (p: { evaluated: number; total: number }) => void | Promise<void>;
    /** Return after a step that ends an epoch (its checkpoint then carries that epoch's validation metrics). */
    stopAtEpochEnd?: boolean;
  }): Promise<TrainResult> {
    this.assertUsable();
    if (!(Number.isInteger(opts.maxSteps) && opts.maxSteps >= 0))
      throw new Error(`train: maxSteps must be an integer >= 0, got ${opts.maxSteps}`);
    if (this.running) throw new Error('train: already running');
    this.running = true;
    const evals: EvalResult[] = [];
    let stepsRun = 0;
    try {
      while (stepsRun < opts.maxSteps && !this.done && !this.epochEndPending) {
        if (opts.shouldStop?.()) break;
        await yieldToEventLoop();
        this.assertUsable();
        this.busy = true;
        const t0 = performance.now();
        const r = this.runStep();
        const seconds = (performance.now() - t0) / 1000;
        stepsRun++;
        const endsEpoch = this.batchInEpoch === this.plan.steps;
        if (endsEpoch && !this.deferEpochEnd) {
          try {
            evals.push(await this.endEpoch(opts.onEvalProgress));
            const test = this.metrics.evals[this.metrics.evals.length - 1];
            if (test.split === 'test') evals.push(test);
          } catch (e) {
            this.failure ??= e instanceof Error ? e : new Error(String(e));
            throw e;
          }
        }
        this.busy = false;
        if (opts.onStep) {
          await opts.onStep({
            step: this.step,
            totalSteps: this.totalSteps,
            epoch: this.epoch,
            batchInEpoch: this.batchInEpoch,
            loss: r.loss,
            accuracy: r.accuracy,
            learningRate: r.learningRate,
            samplesPerSec: seconds > 0 ? r.count / seconds : 0,
            ...(r.regularizationLoss !== undefined ? { regularizationLoss: r.regularizationLoss } : {}),
          });
        }
        if (endsEpoch && opts.stopAtEpochEnd) break;
      }
      return { stepsRun, done: this.done, state: this.state, evals };
    } finally {
      this.running = false;
      this.busy = false;
    }
  }

  /**
   * The rows of a batch (`rows`, indices into the training split) as arrays: features, labels (classification
   * and binary), targets (one-hot scaled by the class weight for classification, values otherwise) and, for a binary
   * run with class weights, each example's weight.
   */
  private batchOf(rows: Int32Array) {
    const count = rows.length;
    const train = this.data.train;
    const size = this.data.featureSize;
    const classify = this.data.task === 'classification';
    const binary = this.data.task === 'binary';
    const C = this.data.outputs;
    const xs = new Float32Array(count * size);
    const labels = new Int32Array(count);
    const targets = new Float32Array(classify ? count * C : count);
    const weights = binary && this.classWeights ? new Float32Array(count) : null;
    for (let k = 0; k < count; k++) {
      const idx = rows[k];
      xs.set(train.x.subarray(idx * size, (idx + 1) * size), k * size);
      if (classify) {
        labels[k] = train.y[idx];
        // A class weight scales the example's term of the cross-entropy (Keras's class_weight); 1 without one.
        targets[k * C + labels[k]] = this.classWeights ? this.classWeights[labels[k]] : 1;
      } else {
        targets[k] = train.y[idx];
        if (binary) labels[k] = train.y[idx];
        if (weights) weights[k] = this.classWeights![labels[k]];
      }
    }
    return { xs, labels, targets, weights };
  }

  /** One optimizer step on the next batch of the current epoch's order. */
  private runStep(): {
    loss: number;
    accuracy: number | null;
    learningRate: number;
    count: number;
    regularizationLoss?: number;
  } {
    const classify = this.data.task === 'classification';
    const binary = this.data.task === 'binary';
    const C = this.data.outputs;
    const rows = this.batchExamples();
    const count = rows.length;
    const learningRate = this.schedule.learningRate(this.step, this.totalSteps);
    const rngBefore = this.rng.getState();

    const { xs, labels, targets, weights } = this.batchOf(rows);

    // Phase 1: forward and gradients. On failure nothing has changed except the PRNG; rewind it.
    const rng = this.rng;
    const mask = (shape: number[], rate: number): tf.Tensor => {
      const n = shape.reduce((a, b) => a * b, 1);
      const m = new Float32Array(n);
      rng.fillMask(m, rate, 1 / (1 - rate));
      return tf.tensor(m, shape, 'float32');
    };
    const trainable = this.frozen.size ? this.net.params.filter((p) => !this.frozen.has(p.name)) : this.net.params;
    const vars = trainable.map((p) => p.variable);
    const updates: StateUpdates = [];
    let outputs: tf.Tensor2D | null = null;
    let penalty: tf.Scalar | null = null;
    let out: { value: tf.Scalar; grads: tf.NamedTensorMap } | null = null;
    let loss: number;
    let regularizationLoss: number | undefined;
    let accuracy: number | null = null;
    try {
      if (this.data.images) randomShift(xs, count, this.shift, rng);
      out = tf.tidy(() => {
        const x = examples(this.data, xs, count);
        const y = tf.tensor2d(targets, [count, classify ? C : 1]);
        return tf.variableGrads(() => {
          outputs = tf.keep(this.net.forward(x, mask, updates));
          const data = classify
            ? softmaxCrossEntropy(outputs, y)
            : binary
              ? sigmoidCrossEntropy(outputs, y, weights ? tf.tensor2d(weights, [count, 1]) : undefined)
              : regressionLossTensor(this.spec.loss, outputs, y);
          if (!this.net.penalties.length) return data;
          // Kept to report it on its own (the curve's regularization loss); the sum is the same either way.
          penalty = tf.keep(penaltyLoss(this.net.penalties));
          return tf.add(data, penalty);
        }, vars);
      });
      loss = out.value.dataSync()[0];
      if (penalty) regularizationLoss = (penalty as tf.Scalar).dataSync()[0];
      // Caught before the update: the weights stay those of the last finite step, and the trainer stays usable.
      if (!Number.isFinite(loss)) throw new NonFiniteError(this.step + 1, learningRate, `the training loss is ${loss}`);
      if (classify || binary) {
        const lv = (outputs as unknown as tf.Tensor2D).dataSync() as Float32Array;
        accuracy = batchAccuracy(lv, labels, count, C, binary);
      }
    } catch (e) {
      this.rng = Prng.fromState(rngBefore);
      if (out) tf.dispose([out.value, ...Object.values(out.grads)]);
      tf.dispose(updates.map(([, t]) => t));
      throw e;
    } finally {
      if (outputs) (outputs as tf.Tensor).dispose();
      if (penalty) (penalty as tf.Tensor).dispose();
    }

    // Phase 2: update. A failure here leaves weights half-updated: the trainer refuses further use.
    try {
      const grads = new Map<string, tf.Tensor>();
      for (const p of trainable) grads.set(p.name, out.grads[p.variable.name]);
      const clipped = clipGradients(grads, this.spec.optimizer);
      try {
        this.opt.apply(clipped.grads, learningRate, this.frozen);
      } finally {
        tf.dispose(clipped.created);
      }
      for (const [v, t] of updates) v.assign(t);
      if (this.net.constraints.length) applyConstraints(this.net.constraints, this.frozen);
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      throw e;
    } finally {
      tf.dispose([out.value, ...Object.values(out.grads)]);
      tf.dispose(updates.map(([, t]) => t));
    }
    this.step += 1;
    this.batchInEpoch += 1;
    this.metrics.lastLoss = loss;
    this.metrics.lastAccuracy = accuracy;
    return { loss, accuracy, learningRate, count, ...(regularizationLoss !== undefined ? { regularizationLoss } : {}) };
  }

  /**
   * Epoch end: evaluate (the validation split when the run has one, else the test split), feed the schedule, move to
   * the next epoch and draw its order. The last epoch end of a run with a validation split also evaluates the test
   * split, once, recorded after the validation result and never used for a choice. Returns the choosing evaluation.
   */
  private async endEpoch(
    onEvalProgress?: (p: { evaluated: number; total: number }) => void | Promise<void>,
  ): Promise<EvalResult> {
    const validation = this.hasValidation;
    const split = validation ? 'validation' : 'test';
    const ev = await this.evaluateYielding(split, onEvalProgress);
    if (!Number.isFinite(ev.loss)) {
      const lr = this.schedule.learningRate(this.step - 1, this.totalSteps);
      throw new NonFiniteError(this.step, lr, `the ${split} loss at the end of epoch ${this.epoch + 1} is ${ev.loss}`);
    }
    const result: EvalResult = {
      epoch: this.epoch,
      step: this.step,
      ...(validation ? { split: 'validation' } : {}),
      ...ev,
    };
    this.metrics.evals.push({ ...result });
    const best = this.metrics.best;
    if (best.loss === null || ev.loss < best.loss) best.loss = ev.loss;
    if (ev.accuracy !== null && (best.accuracy === null || ev.accuracy > best.accuracy)) best.accuracy = ev.accuracy;
    this.schedule.onEpochEnd(ev);
    if (this.spec.earlyStopping && validation) this.watchEarlyStopping(ev);
    if (validation && (this.step >= this.totalSteps || this.stoppedEarly)) {
      const test = await this.evaluateYielding('test', onEvalProgress);
      this.metrics.evals.push({ epoch: this.epoch, step: this.step, split: 'test', ...test });
    }
    this.epoch += 1;
    this.batchInEpoch = 0;
    this.plan = this.planFor(this.epoch);
    // Also after an early stop: a fork that continues past it trains the next epoch in the order a longer run would.
    if (this.step < this.totalSteps) this.order = this.rng.permutation(this.data.train.n);
    return result;
  }

  /** Early stopping's bookkeeping at an epoch end (Keras's rule: an improvement is a change beyond minDelta). */
  private watchEarlyStopping(ev: Omit<EvalResult, 'epoch' | 'step'>): void {
    const es = this.spec.earlyStopping!;
    const value = ev[es.metric];
    // auc is null on a split of one class: that epoch says nothing either way.
    if (value === null || value === undefined) return;
    const st = (this.metrics.earlyStopping ??= { best: null, bestStep: null, wait: 0 });
    const delta = es.minDelta ?? 0;
    const improved = st.best === null || (es.metric === 'loss' ? value < st.best - delta : value > st.best + delta);
    if (improved) {
      st.best = value;
      st.bestStep = this.step;
      st.wait = 0;
    } else st.wait += 1;
  }

  private assertUsable(): void {
    if (this.disposed) throw new Error('trainer: disposed');
    if (this.failure)
      throw new Error(`trainer: unusable after a failed step (${this.failure.message}); restore a snapshot`);
  }

  /** Frees every tensor this trainer owns. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.opt.dispose();
    this.net.dispose();
  }
}
