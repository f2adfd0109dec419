// Activities of distributed rounds (spec.distributed): trainReplica trains one replica for one round from the round's
// global checkpoint and commits its result under the replica's own run id; syncReplicas combines the results in replica
// order and commits the next global checkpoint. Tensors go through the checkpoint store, never through payloads.
import * as os from 'node:os';
import { CancelledFailure, Context, log } from '@temporalio/activity';
import type { CheckpointManager, CheckpointRef, Manifest } from '../checkpoint';
import type { RunSpec } from '../spec/types';
import { replicasOf } from '../spec/helpers';
import { DATA_ORDER_NAME, Trainer, type NamedTensorBytes, type TrainerSnapshot, type TrainerState } from '../training';
import { initBackend, type BackendInfo } from '../training/backend';
import { Prng, type PrngState } from '../training/prng';
import { joiningPrngState, recordedReplicas, topologyRefusal } from '../training/topology';
import {
  averageOf,
  DIST_PREFIX,
  outerBufferName,
  outerStep,
  replicaPrngState,
  replicaRunId,
  replicaSlotName,
  type OuterSpec,
} from '../training/replicas';
import { segmentSteps, type StepMetrics } from '../telemetry/metrics-log';
import { commitTrainer, metricsOf, snapshotOf } from './commit';
import { positionOf } from './chunk/commits';
import { ChunkCurves } from './chunk/curves';
import { fallbackFor, isDamagedOrMissing } from './chunk/start';
import { nonRetryable, storageUnavailable } from './failures';
import { specHash } from './fingerprint';
import type {
  ReplicaActivities,
  ReplicaHeartbeat,
  ReplicaResult,
  RoundSummary,
  SyncReplicasInput,
  TrainReplicaInput,
} from './replica-types';
import { FailureTypes, type Recovery } from './types';
import { WORKER_PID_ENV_VAR } from './trainer-process/protocol';
import type { HeldRounds } from './held-rounds';

export interface ReplicaDeps {
  managerFor(spec: RunSpec, runId: string): CheckpointManager;
  checkSpec(raw: RunSpec): RunSpec;
  /** Round checkpoints this training process holds in memory (held-rounds.ts): a restart restores from there. */
  heldRounds?: HeldRounds;
}

/** What a round's global checkpoint adds to a trainer's state: the other replicas' random streams. */
interface DistributedState {
  replicas: number;
  /** Rounds committed so far. */
  round: number;
  /** Index r > 0: replica r's PRNG state; index 0 is null (replica 0 continues the run's own stream, state.rng). */
  replicaRngs: Array<PrngState | null>;
  outer: string;
}
type GlobalState = TrainerState & { distributed?: DistributedState };
/** A replica's result checkpoint also holds its per-step metrics of the round, for the run's metrics log. */
type ReplicaState = TrainerState & { curve?: StepMetrics[] };

/** The round's per-step metrics for the run's log: loss and accuracy averaged over the replicas in replica order
 *  (the same numbers however the round was served), replica 0's learning rate, the replicas' samples/s summed.
 *  Empty when a replica's result holds no curve (written before curves were kept). */
export function roundCurve(curves: Array<StepMetrics[] | undefined>): StepMetrics[] {
  if (curves.some((c) => !c || c.length !== curves[0]!.length)) return [];
  const n = curves.length;
  return curves[0]!.map((first, k) => {
    let loss = 0;
    let acc: number | null = 0;
    let sps = 0;
    for (const c of curves) {
      loss += c![k].loss;
      acc = acc === null || c![k].accuracy === null ? null : acc + c![k].accuracy!;
      sps += c![k].samplesPerSec;
    }
    return {
      step: first.step,
      loss: loss / n,
      accuracy: acc === null ? null : acc / n,
      learningRate: first.learningRate,
      samplesPerSec: sps,
    };
  });
}

/** The worker that trains the replica (the one whose training process this is, when it is one). */
const WORKER = `${process.env[WORKER_PID_ENV_VAR] ?? process.pid}@${os.hostname()}`;

const f32 = (data: Uint8Array) =>
  new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const sameRef = (a: CheckpointRef | null, b: CheckpointRef | null) =>
  a === null || b === null ? a === b : a.runId === b.runId && a.id === b.id;
const isSlot = (name: string) => name.startsWith('opt/');

function distributedOf(spec: RunSpec) {
  if (!spec.distributed) throw nonRetryable(FailureTypes.InvalidSpec, 'distributed: the spec has no distributed block');
  return spec.distributed;
}

function checkBackend(spec: RunSpec, backend: BackendInfo, m: Manifest): void {
  if (m.backend.name !== backend.name && !spec.resume?.allowBackendChange) {
    throw nonRetryable(
      FailureTypes.ResumeGuard,
      `checkpoint ${m.id} was written on backend ${m.backend.name}, this worker runs ${backend.name}; ` +
        `results would not be bit-identical. Set resume.allowBackendChange or run a worker with DURABLE_TRAIN_BACKEND=${m.backend.name}`,
    );
  }
}

/**
 * Replica `r`'s starting snapshot from a global checkpoint: the global weights, its own slots and random stream; and
 * the replica count the checkpoint was trained with. With another count (resume.allowTopologyChange), a replica the
 * checkpoint had keeps its slots and stream; a replica it did not have joins with the mean of the old replicas' slots
 * (in replica order) and a stream of its own (topology.ts); the replicas dropped leave their slots behind.
 */
export function replicaSnapshot(
  manifest: Manifest,
  blobs: Map<string, Uint8Array>,
  r: number,
  spec: RunSpec,
): { snap: TrainerSnapshot; topologyFrom: number; orderDrawn: boolean } {
  const snap = snapshotOf(manifest, blobs);
  const { distributed, ...state } = manifest.state as GlobalState;
  const was = recordedReplicas(manifest.state as GlobalState);
  const to = replicasOf(spec);
  if (was !== to && !spec.resume?.allowTopologyChange)
    throw nonRetryable(FailureTypes.ResumeGuard, `checkpoint ${manifest.id}: ${topologyRefusal(was, to)}`);
  const shared = snap.tensors.filter((t) => !t.name.startsWith(DIST_PREFIX) && (r === 0 || !isSlot(t.name)));
  // A checkpoint at the end of its run drew no order for a next epoch: a longer spec draws it here, once, from the
  // run's stream (replica 0's), as a single run would, so every replica shares the epoch's order.
  const orderDrawn = state.step === state.totalSteps;
  if (orderDrawn) state.rng = drawNextOrder(shared, state.rng);
  if (r >= was) {
    const own = joiningSlots(manifest.id, snap.tensors, was);
    const rng = joiningPrngState(spec.seed, r, manifest.step);
    return { snap: { tensors: [...shared, ...own], state: { ...state, rng } }, topologyFrom: was, orderDrawn };
  }
  const prefix = replicaSlotName(r, '');
  const own =
    r === 0
      ? []
      : snap.tensors.filter((t) => t.name.startsWith(prefix)).map((t) => ({ ...t, name: t.name.slice(prefix.length) }));
  const rng = r === 0 ? state.rng : distributed?.replicaRngs[r];
  if (r > 0 && (!rng || own.length === 0)) {
    throw nonRetryable(
      FailureTypes.NoValidCheckpoint,
      `checkpoint ${manifest.id} holds no state for replica ${r} although it records ${was} replicas`,
    );
  }
  return { snap: { tensors: [...shared, ...own], state: { ...state, rng: rng! } }, topologyFrom: was, orderDrawn };
}

/** Replaces the data order among `tensors` with the next permutation of the stream `rng`; returns the stream after. */
function drawNextOrder(tensors: NamedTensorBytes[], rng: PrngState): PrngState {
  const i = tensors.findIndex((t) => t.name === DATA_ORDER_NAME);
  if (i < 0) return rng; // takeTensors names the missing tensor
  const stream = Prng.fromState(rng);
  const order = stream.permutation(tensors[i].shape[0]);
  tensors[i] = { ...tensors[i], data: new Uint8Array(order.buffer, order.byteOffset, order.byteLength) };
  return stream.getState();
}

/** The optimizer slots of a replica joining a run of `was` replicas: each slot the mean of theirs, in replica order;
 *  the step counter (int32, the same in every replica) replica 0's. */
function joiningSlots(id: string, tensors: NamedTensorBytes[], was: number): NamedTensorBytes[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return tensors
    .filter((t) => isSlot(t.name))
    .map((t) => {
      if (t.dtype !== 'float32' || was === 1) return { ...t, data: t.data.slice() };
      const values = [f32(t.data)];
      for (let q = 1; q < was; q++) {
        const other = byName.get(replicaSlotName(q, t.name));
        if (!other)
          throw nonRetryable(FailureTypes.NoValidCheckpoint, `checkpoint ${id} lacks replica ${q}'s ${t.name}`);
        values.push(f32(other.data));
      }
      return { ...t, data: bytes(averageOf(values)) };
    });
}

/** The checkpoint the round's replicas started from; they must agree. */
function roundStartOf(input: SyncReplicasInput): CheckpointRef | null {
  // A result without `start` comes from a worker that predates fallbacks: it started from the round's checkpoint.
  const startOf = (x: ReplicaResult) => (x.start === undefined ? input.from : x.start);
  const start = input.results.length ? startOf(input.results[0]) : input.from;
  const other = input.results.find((x) => !sameRef(startOf(x), start));
  if (other)
    throw nonRetryable(
      FailureTypes.NoValidCheckpoint,
      `round ${input.round}: replica 0 started from ${start?.id ?? 'scratch'} and replica ${other.replica} from ` +
        `${startOf(other)?.id ?? 'scratch'}: round checkpoint ${input.from?.id ?? '(none)'} is damaged where only some ` +
        `replicas read it; resume the run to restart from its newest valid checkpoint`,
    );
  return start;
}

/** What the round recovered from: a damaged round checkpoint (every replica fell back), replicas retried, or both. */
function roundRecovery(
  input: SyncReplicasInput,
  start: CheckpointRef | null,
  retried: ReplicaResult[],
): Recovery | null {
  const fellBack = input.results[0]?.recovery ?? null;
  if (!fellBack && !retried.length) return null;
  const reasons = [
    ...(fellBack ? [fellBack.reason] : []),
    ...(retried.length
      ? [
          `round ${input.round}: replica(s) ${retried.map((x) => `${x.replica} (attempt ${x.attempt})`).join(', ')} retried; the others' results kept`,
        ]
      : []),
  ];
  return {
    requested: input.from?.id ?? null,
    restoredFrom: start?.id ?? null,
    reason: reasons.join('; '),
    attempt: Math.max(1, ...retried.map((x) => x.attempt)),
  };
}

/** A replica's trainer from a snapshot; a snapshot that does not fit the spec cannot be trained on by any attempt. */
async function restore(
  spec: RunSpec,
  snap: TrainerSnapshot,
  replica: number,
  laid: { topologyFrom?: number; orderDrawn?: boolean } = {},
): Promise<Trainer> {
  try {
    return await Trainer.fromSnapshot(spec, snap, { replica, deferEpochEnd: true, ...laid });
  } catch (err) {
    throw nonRetryable(FailureTypes.ResumeGuard, `replica ${replica}: cannot restore: ${(err as Error).message}`);
  }
}

/** A checkpoint, verified. `only`: just the blobs it names; a replica reads the global weights and its own slots,
 *  not every replica's, so a round reads O(N) bytes, not O(N^2). */
async function load(m: CheckpointManager, ref: CheckpointRef, only?: (name: string, manifest: Manifest) => boolean) {
  try {
    return await m.load(ref.id, { only });
  } catch (err) {
    if (isDamagedOrMissing(err))
      throw nonRetryable(
        FailureTypes.NoValidCheckpoint,
        `checkpoint ${ref.runId}:${ref.id}: ${(err as Error).message}`,
      );
    throw storageUnavailable(err, `cannot read checkpoint ${ref.runId}:${ref.id}`);
  }
}

/** load() from the manager of the checkpoint's own run. */
function loadRef(
  deps: ReplicaDeps,
  spec: RunSpec,
  ref: CheckpointRef,
  only?: (name: string, manifest: Manifest) => boolean,
) {
  return load(deps.managerFor(spec, ref.runId), ref, only);
}

/** A checkpoint as load() returns it. */
type Loaded = Awaited<ReturnType<CheckpointManager['load']>>;

interface ReplicaStart {
  trainer: Trainer;
  /** The global checkpoint the trainer was restored from (null: fresh). */
  start: CheckpointRef | null;
  recovery: Recovery | null;
}

/**
 * The replica's starting trainer: from the round's global checkpoint, or fresh (same init for all, own random
 * stream).
 */
async function startTrainer(
  deps: ReplicaDeps,
  spec: RunSpec,
  backend: BackendInfo,
  input: TrainReplicaInput,
  attempt: number,
): Promise<ReplicaStart> {
  if (input.from) return startFromRound(deps, spec, backend, input, input.from, attempt);
  const r = input.replica;
  const fresh = await Trainer.create(spec, { replica: r, deferEpochEnd: true });
  if (r === 0) return { trainer: fresh, start: null, recovery: null };
  const snap = fresh.snapshot();
  fresh.dispose();
  const rng = replicaPrngState(spec.seed, r);
  return { trainer: await restore(spec, { ...snap, state: { ...snap.state, rng } }, r), start: null, recovery: null };
}

/**
 * The replica's trainer from the round's global checkpoint `from`. A round checkpoint that is damaged or missing is
 * never loaded: the replica starts from the run's newest valid checkpoint before it and says so; every replica reading
 * the same store falls back to the same one.
 */
async function startFromRound(
  deps: ReplicaDeps,
  spec: RunSpec,
  backend: BackendInfo,
  input: TrainReplicaInput,
  from: CheckpointRef,
  attempt: number,
): Promise<ReplicaStart> {
  const { replica: r, runId } = input;
  const mine = replicaSlotName(r, '');
  const anyReplica = `${DIST_PREFIX}replica-`;
  // A replica the checkpoint did not have (a change of the count) starts from the mean of every replica's slots; the
  // others read only their own (O(N) bytes a round).
  const wanted = (name: string, m: Manifest) =>
    !name.startsWith(DIST_PREFIX) ||
    name.startsWith(mine) ||
    (name.startsWith(anyReplica) && r >= recordedReplicas(m.state as GlobalState));
  const manager = deps.managerFor(spec, from.runId);
  let start: CheckpointRef = from;
  let recovery: Recovery | null = null;
  let loaded: Loaded;
  const t0 = performance.now();
  const held = (await deps.heldRounds?.take(from, wanted)) ?? null;
  try {
    if (held) {
      loaded = held;
      console.error(
        `durable-train: replica ${r} of run ${runId} restores the round's checkpoint ${from.id} from memory ` +
          `(${held.blobs.size} blobs checked against its manifest, ${Math.round(performance.now() - t0)} ms)`,
      );
    } else loaded = await manager.load(from.id, { only: wanted });
  } catch (err) {
    if (!isDamagedOrMissing(err)) throw storageUnavailable(err, `cannot read checkpoint ${from.runId}:${from.id}`);
    const message = (err as Error).message;
    const fallback = from.runId === runId ? await fallbackFor(manager, from) : null;
    if (!fallback)
      throw nonRetryable(
        FailureTypes.NoValidCheckpoint,
        `checkpoint ${from.runId}:${from.id}: ${message}; no valid earlier checkpoint of the run to fall back to`,
      );
    log.warn('round checkpoint damaged; falling back', { requested: from.id, fallback: fallback.manifest.id });
    start = { runId, id: fallback.manifest.id };
    recovery = { requested: from.id, restoredFrom: start.id, reason: `damaged checkpoint: ${message}`, attempt };
    loaded = await load(manager, start, wanted);
  }
  checkBackend(spec, backend, loaded.manifest);
  const { snap, topologyFrom, orderDrawn } = replicaSnapshot(loaded.manifest, loaded.blobs, r, spec);
  return { trainer: await restore(spec, snap, r, { topologyFrom, orderDrawn }), start, recovery };
}

/**
 * An earlier attempt's result for this round, when it committed one before its worker died and it is still good: made
 * from the round's checkpoint (unless that checkpoint has been damaged since: the other replicas then fall back past it,
 * and this one must as well), with this spec, verified. Null when there is none.
 */
async function earlierResult(
  deps: ReplicaDeps,
  spec: RunSpec,
  own: CheckpointManager,
  input: TrainReplicaInput,
  hash: string,
  attempt: number,
): Promise<ReplicaResult | null> {
  const r = input.replica;
  const done = await own.list().catch((err: unknown) => {
    throw storageUnavailable(err, `cannot list the results of replica ${r}`);
  });
  const earlier = done.filter((c) => sameRef(c.parent, input.from)).reverse();
  const roundIntact = async () =>
    !input.from ||
    (
      await deps
        .managerFor(spec, input.from.runId)
        .verify(input.from.id)
        .catch((err: unknown) => {
          throw storageUnavailable(err, `cannot verify checkpoint ${input.from!.runId}:${input.from!.id}`);
        })
    ).ok;
  for (const c of earlier.length && (await roundIntact()) ? earlier : []) {
    const m = await own.readManifest(c.id).catch(() => null);
    if (!m || m.fingerprints.spec !== hash || !(await own.verify(c.id)).ok) continue;
    const st = m.state as TrainerState;
    return {
      replica: r,
      start: input.from,
      recovery: null,
      checkpoint: positionOf(m),
      fromStep: m.step - (input.steps > 0 ? Math.min(input.steps, m.step) : 0),
      step: m.step,
      stepsRun: 0,
      loss: st.metrics.lastLoss,
      accuracy: st.metrics.lastAccuracy,
      samplesPerSec: 0,
      trainMs: 0,
      commitMs: 0,
      attempt,
      worker: WORKER,
      reused: true,
    };
  }
  return null;
}

/**
 * Trains the replica's `steps` steps, heartbeating after each (and the last details again while an epoch-end
 * evaluation runs, so it is not taken for a dead worker). Returns the per-step curve for the run's metrics log.
 */
async function trainRound(ctx: Context, trainer: Trainer, input: TrainReplicaInput, steps: number) {
  let samplesPerSec = 0;
  let last: ReplicaHeartbeat | undefined;
  const curve: StepMetrics[] = [];
  const result = await trainer.train({
    maxSteps: steps,
    shouldStop: () => ctx.cancellationSignal.aborted,
    onEvalProgress: () => ctx.heartbeat(last),
    onStep: (p) => {
      samplesPerSec = p.samplesPerSec;
      curve.push({
        step: p.step,
        loss: p.loss,
        accuracy: p.accuracy,
        learningRate: p.learningRate,
        samplesPerSec: p.samplesPerSec,
      });
      last = {
        replica: input.replica,
        round: input.round,
        step: p.step,
        totalSteps: p.totalSteps,
        epoch: p.epoch,
        loss: p.loss,
        samplesPerSec: p.samplesPerSec,
      };
      ctx.heartbeat(last);
    },
  });
  return { result, samplesPerSec, curve };
}

/** Trains one replica for one round and commits its result under the replica's own run id (see the file's head). */
export async function trainReplica(deps: ReplicaDeps, input: TrainReplicaInput): Promise<ReplicaResult> {
  const ctx = Context.current();
  const spec = deps.checkSpec(input.spec);
  const dist = distributedOf(spec);
  const r = input.replica;
  if (!(Number.isInteger(r) && r >= 0 && r < dist.replicas))
    throw nonRetryable(FailureTypes.InvalidSpec, `replica ${r} is not in [0, ${dist.replicas})`);
  const hash = specHash(spec);
  const own = deps.managerFor(spec, replicaRunId(input.runId, r));
  const attempt = ctx.info.attempt;
  const reused = await earlierResult(deps, spec, own, input, hash, attempt);
  if (reused) return reused;

  const backend = await initBackend();
  const t0 = Date.now();
  const { trainer, start, recovery } = await startTrainer(deps, spec, backend, input, attempt);
  try {
    const fromStep = trainer.state.step;
    // After a fallback the round runs from the earlier step: as long as a round from there is.
    const st0 = trainer.state;
    const steps = recovery
      ? Math.max(0, Math.min(dist.syncEverySteps, trainer.stepsLeftInEpoch, st0.totalSteps - fromStep))
      : input.steps;
    if (input.learningRateOverride != null) trainer.setLearningRate(input.learningRateOverride);
    const { result, samplesPerSec, curve } = await trainRound(ctx, trainer, input, steps);
    // A cut replica commits nothing: the round is retried whole for this replica, from the global checkpoint.
    if (ctx.cancellationSignal.aborted) throw new CancelledFailure(`replica ${r} cancelled`);
    const trainMs = Date.now() - t0;
    const c0 = Date.now();
    const m = await commitTrainer(own, trainer, {
      backend,
      specHash: hash,
      parent: start,
      reason: `round-${input.round}`,
      extraState: { curve },
    }).catch((err: unknown) => {
      throw storageUnavailable(err, `commit of replica ${r} of run ${input.runId} failed`);
    });
    const st = trainer.state;
    return {
      replica: r,
      start,
      recovery,
      checkpoint: positionOf(m),
      fromStep,
      step: st.step,
      stepsRun: result.stepsRun,
      loss: st.metrics.lastLoss,
      accuracy: st.metrics.lastAccuracy,
      samplesPerSec,
      trainMs,
      commitMs: Date.now() - c0,
      attempt,
      worker: WORKER,
      reused: false,
    };
  } finally {
    trainer.dispose();
  }
}

/** Replica results, in replica order (the order of the combination: it never depends on who finished first). */
async function loadResults(
  ctx: Context,
  deps: ReplicaDeps,
  spec: RunSpec,
  input: SyncReplicasInput,
): Promise<Loaded[]> {
  const loaded = [];
  for (const res of input.results) {
    loaded.push(await loadRef(deps, spec, res.checkpoint));
    ctx.heartbeat();
  }
  return loaded;
}

/**
 * The previous rounds' replica results are no longer needed (this round's are loaded; a fallback retrains from a global
 * checkpoint): keep only this round's, deleting the rest while the sync goes on. Never fails.
 */
function pruneEarlierResults(deps: ReplicaDeps, spec: RunSpec, input: SyncReplicasInput): Promise<unknown> {
  return Promise.all(
    input.results.map((res) =>
      deps
        .managerFor(spec, res.checkpoint.runId)
        .applyRetention({ keepLatest: 1 }, [res.checkpoint.id])
        .catch((err: unknown) => log.warn('replica retention failed', { error: (err as Error).message })),
    ),
  );
}

/** The global weights the round started from (nesterov's pseudo-gradient) and the outer optimizer's state; null for
 *  `average`, which needs neither. */
async function roundStartWeights(
  deps: ReplicaDeps,
  spec: RunSpec,
  outer: OuterSpec,
  start: CheckpointRef | null,
): Promise<Map<string, Uint8Array> | null> {
  if (outer.name !== 'nesterov') return null;
  if (start) {
    const wanted = (name: string) => name.startsWith('model/') || name.startsWith(outerBufferName(''));
    return (await loadRef(deps, spec, start, wanted)).blobs;
  }
  const global = new Map<string, Uint8Array>();
  const fresh = await Trainer.create(spec);
  for (const t of fresh.snapshot().tensors) global.set(t.name, t.data);
  fresh.dispose();
  return global;
}

/**
 * The outer step over the replicas' snapshots, in replica order: the new global weights (the lead replica's other
 * tensors kept), the outer optimizer's buffers, and the lead's state with loss and accuracy averaged.
 */
function combine(
  outer: OuterSpec,
  snaps: TrainerSnapshot[],
  global: Map<string, Uint8Array> | null,
): { tensors: NamedTensorBytes[]; outerBlobs: NamedTensorBytes[]; state: TrainerState } {
  const lead = snaps[0];
  const tensors: NamedTensorBytes[] = [];
  const outerBlobs: NamedTensorBytes[] = [];
  for (const t of lead.tensors) {
    if (!t.name.startsWith('model/')) {
      tensors.push(t);
      continue;
    }
    const values = snaps.map((s) => f32(s.tensors.find((x) => x.name === t.name)!.data));
    const g = global?.get(t.name);
    const buf = global?.get(outerBufferName(t.name));
    const step1 = outerStep(outer, g ? f32(g) : values[0], values, buf ? f32(buf) : null);
    tensors.push({ ...t, data: bytes(step1.weights) });
    if (step1.buffer) outerBlobs.push({ ...t, name: outerBufferName(t.name), data: bytes(step1.buffer) });
  }
  const mean = (xs: Array<number | null>) =>
    xs.some((x) => x === null) ? null : xs.reduce<number>((a, b) => a + b!, 0) / xs.length;
  const state: TrainerState = {
    ...lead.state,
    metrics: {
      ...lead.state.metrics,
      lastLoss: mean(snaps.map((s) => s.state.metrics.lastLoss)),
      lastAccuracy: mean(snaps.map((s) => s.state.metrics.lastAccuracy)),
    },
  };
  return { tensors, outerBlobs, state };
}

/**
 * The round's segment of the run's metrics log, written before its checkpoint with the commit protocol's care (the
 * caller finishes it with afterCommit() once the checkpoint is committed); a retried sync, or the first round after a
 * fallback, first drops what was logged past its start. `listed`: the log's segments, listed while the results loaded.
 */
async function roundCurves(
  ctx: Context,
  manager: CheckpointManager,
  spec: RunSpec,
  input: SyncReplicasInput,
  start: CheckpointRef | null,
  listed: Promise<number[]>,
  curve: StepMetrics[],
  trainer: Trainer,
): Promise<ChunkCurves> {
  const fromStep = input.results[0].fromStep;
  const stale = await listed;
  const curves = await ChunkCurves.open({
    store: manager.store,
    runId: input.runId,
    spec,
    parent: start,
    fromStep,
    restored: ctx.info.attempt > 1 || stale.some((s) => s > fromStep),
  });
  for (const p of curve) curves.record(p);
  await curves.beforeCommit(trainer.state.step, trainer.state.totalSteps, trainer.state.metrics.evals);
  return curves;
}

/**
 * Commits the round's global checkpoint: the combined trainer's snapshot, the outer optimizer's buffers, every other
 * replica's slots and random stream. Checked like a chunk's weights before it is committed: never a NaN checkpoint.
 */
async function commitRound(
  manager: CheckpointManager,
  trainer: Trainer,
  o: {
    input: SyncReplicasInput;
    outer: OuterSpec;
    snaps: TrainerSnapshot[];
    outerBlobs: NamedTensorBytes[];
    start: CheckpointRef | null;
    hash: string;
    backend: BackendInfo;
  },
): Promise<Manifest> {
  const { input, snaps } = o;
  const n = snaps.length;
  const final = trainer.snapshot();
  const blobs = [...final.tensors, ...o.outerBlobs];
  for (let r = 1; r < n; r++) {
    for (const t of snaps[r].tensors) if (isSlot(t.name)) blobs.push({ ...t, name: replicaSlotName(r, t.name) });
  }
  Trainer.checkFinite({ tensors: blobs, state: final.state });
  const state: GlobalState = {
    ...final.state,
    distributed: {
      replicas: n,
      round: input.round + 1,
      replicaRngs: snaps.map((s, r) => (r === 0 ? null : s.state.rng)),
      outer: o.outer.name,
    },
  };
  return manager
    .commit(
      {
        step: state.step,
        epoch: state.epoch,
        createdAt: new Date().toISOString(),
        parent: o.start,
        blobs,
        state,
        metrics: metricsOf(final.state),
        fingerprints: {
          spec: o.hash,
          dataset: trainer.info.datasetFingerprint,
          model: trainer.info.modelFingerprint,
        },
        backend: { name: o.backend.name, version: o.backend.version },
        reason: 'round',
      },
      { handOver: true },
    )
    .catch((err: unknown) => {
      throw storageUnavailable(err, `commit of round ${input.round} of run ${input.runId} failed`);
    });
}

/**
 * Combines the round's replica results in replica order and commits the next global checkpoint, with the round's
 * segment of the metrics log (see the file's head).
 */
export async function syncReplicas(deps: ReplicaDeps, input: SyncReplicasInput): Promise<RoundSummary> {
  const ctx = Context.current();
  const t0 = Date.now();
  const spec = deps.checkSpec(input.spec);
  const dist = distributedOf(spec);
  const outer = dist.outer ?? { name: 'average' as const };
  const n = dist.replicas;
  if (input.results.length !== n || input.results.some((x, i) => x.replica !== i))
    throw nonRetryable(FailureTypes.InvalidSpec, `sync: expected the results of replicas 0..${n - 1} in order`);
  const hash = specHash(spec);
  const backend = await initBackend();
  const manager = deps.managerFor(spec, input.runId);
  // Where the round really started: the round's checkpoint, or the one every replica fell back to. Replicas that
  // disagree (damage only in blobs some of them read, such as one replica's slots) cannot be combined.
  const start = roundStartOf(input);

  // The metrics log's segments, listed while the results load (off the round's critical path).
  const listed = segmentSteps(manager.store, input.runId).catch((err: unknown) => {
    throw storageUnavailable(err, `cannot list the metrics log of run ${input.runId}`);
  });
  listed.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
  const loaded = await loadResults(ctx, deps, spec, input);
  const retention = pruneEarlierResults(deps, spec, input);
  const snaps = loaded.map((l) => {
    const state: ReplicaState = { ...(l.manifest.state as ReplicaState) };
    delete state.curve;
    return { ...snapshotOf(l.manifest, l.blobs), state };
  });
  const curve = roundCurve(loaded.map((l) => (l.manifest.state as ReplicaState).curve));
  const step = snaps[0].state.step;
  if (snaps.some((s) => s.state.step !== step))
    throw nonRetryable(FailureTypes.InvalidSpec, `sync: replicas ended at different steps`);

  const global = await roundStartWeights(deps, spec, outer, start);
  const { tensors, outerBlobs, state } = combine(outer, snaps, global);
  const trainer = await restore(spec, { tensors, state }, 0);
  try {
    // The epoch end the replicas left open: evaluated on the combined weights; the next order from the run stream.
    const ev = await trainer.completeEpoch(() => ctx.heartbeat());
    const c0 = Date.now();
    const curves = await roundCurves(ctx, manager, spec, input, start, listed, curve, trainer);
    const m = await commitRound(manager, trainer, { input, outer, snaps, outerBlobs, start, hash, backend });
    await curves.afterCommit().catch((err: unknown) => {
      throw storageUnavailable(err, `cannot write the TensorBoard file of round ${input.round}`);
    });
    const commitMs = Date.now() - c0;
    await retention;
    const retried = input.results.filter((x) => x.attempt > 1);
    const st = trainer.state;
    return {
      round: input.round,
      syncMs: Date.now() - t0,
      checkpoint: positionOf(m),
      fromStep: input.results[0].fromStep,
      step: st.step,
      totalSteps: st.totalSteps,
      epoch: st.epoch,
      done: trainer.done,
      stepsRun: Math.max(...input.results.map((x) => x.stepsRun)),
      cut: false,
      loss: st.metrics.lastLoss,
      accuracy: st.metrics.lastAccuracy,
      learningRate: st.learningRate,
      evals: ev ? [ev] : [],
      lastEval: st.metrics.evals[st.metrics.evals.length - 1] ?? null,
      samplesPerSec: input.results.reduce((a, x) => a + x.samplesPerSec, 0),
      backend: backend.name,
      commits: 1,
      source: 'restored',
      recovery: roundRecovery(input, start, retried),
      weightsSha256: trainer.weightsSha256(),
      trainMs: Math.max(...input.results.map((x) => x.trainMs)),
      commitMs,
    };
  } finally {
    trainer.dispose();
  }
}

export function createReplicaActivities(deps: ReplicaDeps): ReplicaActivities {
  return {
    trainReplica: (input) => trainReplica(deps, input),
    syncReplicas: (input) => syncReplicas(deps, input),
  };
}
