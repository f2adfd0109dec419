// What a checkpoint of a trainer holds, in one place: trainChunk and the overhead benchmark commit exactly this.
import type { CheckpointManager, CheckpointRef, Manifest } from '../checkpoint';
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

/** Snapshots the trainer (between steps) and commits it; resolves once the checkpoint is durable. */
export function commitTrainer(
  manager: CheckpointManager,
  trainer: Trainer,
  o: {
    backend: BackendInfo;
    specHash: string;
    parent: CheckpointRef | null;
    reason: string;
    /** Fields added to the manifest's state beside the trainer's (a replica's per-step curve). */
    extraState?: Record<string, unknown>;
  },
): Promise<Manifest> {
  const snap = trainer.snapshot();
  Trainer.checkFinite(snap);
  return manager.commit(
    {
      step: snap.state.step,
      epoch: snap.state.epoch,
      createdAt: new Date().toISOString(),
      parent: o.parent,
      blobs: snap.tensors,
      state: o.extraState ? { ...snap.state, ...o.extraState } : snap.state,
      metrics: metricsOf(snap.state),
      fingerprints: {
        spec: o.specHash,
        dataset: trainer.info.datasetFingerprint,
        model: trainer.info.modelFingerprint,
      },
      backend: { name: o.backend.name, version: o.backend.version },
      reason: o.reason,
    },
    // snapshot() returns fresh copies that nothing else references: hand them over instead of copying again.
    { handOver: true },
  );
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
