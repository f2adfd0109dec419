// What a checkpoint of a trainer holds, in one place: trainChunk and the overhead benchmark commit exactly this.
import type { BlobInput, CheckpointManager, CheckpointRef, CommitInput, Manifest } from '../checkpoint';
import { Trainer, type TrainerSnapshot, type TrainerState } from '../training';
import type { BackendInfo } from '../training/backend';
import { EXTRA_METRICS } from '../spec/catalog';

export function metricsOf(state: TrainerState): Record<string, number> {
  const out: Record<string, number> = { learningRate: state.learningRate };
  if (state.metrics.lastLoss !== null) out.loss = state.metrics.lastLoss;
  if (state.metrics.lastAccuracy !== null) out.accuracy = state.metrics.lastAccuracy;
  // Evaluation metrics belong to the checkpoint only when it was taken right at that evaluation: validation ones as
  // val*, test ones as test* (a run without a validation split evaluates the test split at every epoch end).
  for (let i = state.metrics.evals.length - 1; i >= 0 && state.metrics.evals[i].step === state.step; i--) {
    const e = state.metrics.evals[i];
    const prefix = e.split === 'validation' ? 'val' : 'test';
    if (out[`${prefix}Loss`] !== undefined) continue;
    out[`${prefix}Loss`] = e.loss;
    if (e.accuracy !== null) out[`${prefix}Accuracy`] = e.accuracy;
    if (e.mae !== undefined) out[`${prefix}Mae`] = e.mae;
    if (e.mse !== undefined) out[`${prefix}Mse`] = e.mse;
    for (const m of EXTRA_METRICS)
      if (typeof e[m] === 'number') out[`${prefix}${m[0].toUpperCase()}${m.slice(1)}`] = e[m];
  }
  return out;
}

interface CommitOf {
  backend: BackendInfo;
  specHash: string;
  parent: CheckpointRef | null;
  reason: string;
  /** Fields added to the manifest's state beside the trainer's (a replica's per-step curve). */
  extraState?: Record<string, unknown>;
  /**
   * Let the optimizer lend its host arrays instead of copying them (Trainer.snapshot's `lend`): only for a snapshot
   * that comes back as the next one's `reuse` and that nothing else keeps, persisted where shared memory is read as it
   * is (CheckpointManager.readsSharedMemory).
   */
  lend?: boolean;
}

/** A committed snapshot whose buffers nothing reads any more, with the manifest it was committed as. */
export interface SpareSnapshot {
  input: CommitInput;
  manifest: Manifest;
}

/**
 * The first phase of a commit: the trainer's state as a CommitInput, taken between steps. Its blobs are fresh copies
 * (snapshot() copies every weight and slot out of the backend) or, with `o.lend`, arrays the optimizer lends until the
 * next snapshot, so the trainer may keep training while they persist. With `reuse`, the copy lands in its buffers (and
 * what it borrowed is given back), and each blob says which rows changed since `reuse.manifest` (so the commit, given
 * that manifest as `previous`, stores only those rows).
 */
export function snapshotForCommit(trainer: Trainer, o: CommitOf, reuse?: SpareSnapshot): CommitInput {
  const snap = trainer.snapshot({
    reuse: reuse && {
      tensors: reuse.input.blobs as TrainerSnapshot['tensors'],
      state: reuse.input.state as TrainerState,
    },
    lend: o.lend,
  });
  const before = new Map(reuse?.manifest.blobs.map((b) => [b.name, b.sha256]));
  const blobs: BlobInput[] = snap.tensors.map(({ changedRows, ...t }) => {
    const from = before.get(t.name);
    return changedRows && from ? { ...t, changes: { from, rows: changedRows } } : t;
  });
  return {
    step: snap.state.step,
    epoch: snap.state.epoch,
    createdAt: new Date().toISOString(),
    parent: o.parent,
    blobs,
    state: o.extraState ? { ...snap.state, ...o.extraState } : snap.state,
    metrics: metricsOf(snap.state),
    fingerprints: {
      spec: o.specHash,
      dataset: trainer.info.datasetFingerprint,
      model: trainer.info.modelFingerprint,
    },
    backend: { name: o.backend.name, version: o.backend.version },
    reason: o.reason,
  };
}

/**
 * The second phase: persists a snapshot (blobs, then the manifest); resolves once the checkpoint is durable.
 * `offThread`: a persist that overlaps training, in the persist thread where the manager has one (else hashing on the
 * libuv pool rather than the calling thread).
 */
export async function persistSnapshot(
  manager: CheckpointManager,
  input: CommitInput,
  o: { offThread?: boolean; previous?: Manifest } = {},
): Promise<Manifest> {
  // A snapshot's buffers are fresh copies that nothing else references: hand them over instead of copying again.
  if (!o.offThread) {
    checkFinite(input);
    return manager.commit(input, { handOver: true, previous: o.previous });
  }
  // In the background: in the persist thread, or here while the pool hashes and writes (the manifest waits for the
  // finite check, run here a slice at a time).
  return manager.commitInBackground(input, { previous: o.previous, finite: () => checkFiniteYielding(input) });
}

/** No checkpoint holds a NaN or an infinity: the newest checkpoint is always the last finite one. */
function checkFinite(input: CommitInput): void {
  Trainer.checkFinite({ tensors: input.blobs as TrainerSnapshot['tensors'], state: input.state as TrainerState });
}

/** checkFinite about 64 MB at a time (tens of ms), yielding between, so it never holds the training loop for long. */
async function checkFiniteYielding(input: CommitInput): Promise<void> {
  let since = 0;
  for (const t of input.blobs) {
    checkFinite({ ...input, blobs: [t] });
    since += t.data.byteLength;
    if (since >= 64 << 20) {
      since = 0;
      await new Promise<void>((r) => setImmediate(r));
    }
  }
}

/** Snapshots the trainer (between steps) and commits it; resolves once the checkpoint is durable. */
export function commitTrainer(manager: CheckpointManager, trainer: Trainer, o: CommitOf): Promise<Manifest> {
  return persistSnapshot(manager, snapshotForCommit(trainer, o));
}

/**
 * A loaded checkpoint as the spare of the first commit after a restore: its buffers (which the restored trainer does
 * not hold: it copies what it takes) receive the next snapshot, and only the rows that changed since it are stored.
 * A buffer the load shared between blobs of equal content is copied, so every blob has its own.
 */
export function spareOfLoaded(manifest: Manifest, blobs: Map<string, Uint8Array>): SpareSnapshot {
  const seen = new Set<Uint8Array>();
  const own = (data: Uint8Array) => {
    const mine = seen.has(data) ? new Uint8Array(data) : data;
    seen.add(mine);
    return mine;
  };
  const m = manifest;
  const input: CommitInput = {
    step: m.step,
    epoch: m.epoch,
    createdAt: m.createdAt,
    parent: m.parent,
    blobs: m.blobs.map((b) => ({ name: b.name, dtype: b.dtype, shape: b.shape, data: own(blobs.get(b.name)!) })),
    state: m.state,
    metrics: m.metrics,
    fingerprints: m.fingerprints,
    backend: m.backend,
  };
  return {
    input,
    manifest,
  };
}

/** The inverse of commitTrainer: a trainer snapshot from a loaded (verified) checkpoint. */
export function snapshotOf(manifest: Manifest, blobs: Map<string, Uint8Array>): TrainerSnapshot {
  return {
    tensors: manifest.blobs.map((b) => ({
      name: b.name,
      dtype: b.dtype as 'float32' | 'int32',
      shape: b.shape,
      data: blobs.get(b.name)!,
    })),
    state: manifest.state as TrainerState,
  };
}
