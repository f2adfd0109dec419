// Restoring a trainer from a verified checkpoint, behind the resume guards: a checkpoint continues only where its
// results stay exact (same backend, same gradient math, same data position, same model, same data), unless the spec
// allows otherwise.
import type { Manifest } from '../../checkpoint';
import type { RunSpec } from '../../spec/types';
import { builtinTrainRows, stepCounts } from '../../spec/helpers';
import { Trainer, type SnapshotOptions } from '../../training';
import type { BackendInfo } from '../../training/backend';
import { restoreDecision } from '../../training/numerics';
import { snapshotOf } from '../commit';
import { classifyFailure, nonRetryable } from '../failures';
import { FailureTypes } from '../types';

const guard = (message: string) => nonRetryable(FailureTypes.ResumeGuard, message);

export async function restoreTrainer(
  spec: RunSpec,
  backend: BackendInfo,
  manifest: Manifest,
  blobs: Map<string, Uint8Array>,
  opts: SnapshotOptions = {},
): Promise<Trainer> {
  const snapshot = snapshotOf(manifest, blobs);
  if (manifest.backend.name !== backend.name && !spec.resume?.allowBackendChange) {
    throw guard(
      `checkpoint ${manifest.id} was written on backend ${manifest.backend.name}, this worker runs ${backend.name}; ` +
        `results would not be bit-identical. Set resume.allowBackendChange or run a worker with DURABLE_TRAIN_BACKEND=${manifest.backend.name}`,
    );
  }
  // The gradient math: a checkpoint without the field was computed with version 1.
  let refusal: string | null;
  try {
    refusal = restoreDecision(snapshot.state, backend.name, spec).refusal;
  } catch (err) {
    throw guard(`checkpoint ${manifest.id}: ${(err as Error).message}`);
  }
  if (refusal) throw guard(`checkpoint ${manifest.id} cannot continue on this worker: ${refusal}`);
  // A file dataset's row count is known once it is read: Trainer.fromSnapshot checks that case itself.
  const rows = builtinTrainRows(spec);
  const stepsPerEpoch = rows === null ? snapshot.state.stepsPerEpoch : stepCounts(spec, rows).stepsPerEpoch;
  if (snapshot.state.stepsPerEpoch !== stepsPerEpoch) {
    const was = (snapshot.state as { distributed?: { replicas?: number } }).distributed?.replicas ?? 1;
    const now = spec.distributed?.replicas ?? 1;
    if (was !== now)
      throw guard(
        `checkpoint ${manifest.id} was trained by ${was} replica${was === 1 ? '' : 's'}, the spec has ${now} ` +
          `(distributed.replicas): each replica's share of an epoch, and so the steps per epoch ` +
          `(${snapshot.state.stepsPerEpoch} vs ${stepsPerEpoch}), would change; distributed.replicas cannot change when resuming`,
      );
    throw guard(
      `checkpoint ${manifest.id} has ${snapshot.state.stepsPerEpoch} steps per epoch, the spec gives ${stepsPerEpoch}: ` +
        `dataset.trainLimit and batchSize cannot change when resuming`,
    );
  }
  let trainer: Trainer;
  try {
    trainer = await Trainer.fromSnapshot(spec, snapshot, opts);
  } catch (err) {
    // The backend failing (out of memory, a wasm trap) or a model that cannot be built says nothing of the checkpoint.
    const failure = classifyFailure(err, `restoring checkpoint ${manifest.id}`);
    if (failure !== err) throw failure;
    throw guard(`cannot restore checkpoint ${manifest.id}: ${(err as Error).message}`);
  }
  if (manifest.fingerprints.model && trainer.info.modelFingerprint !== manifest.fingerprints.model) {
    trainer.dispose();
    throw guard(`checkpoint ${manifest.id} holds a different model topology`);
  }
  if (manifest.fingerprints.dataset !== trainer.info.datasetFingerprint && !spec.resume?.allowDatasetChange) {
    trainer.dispose();
    throw guard(
      `checkpoint ${manifest.id} was trained on different data (dataset fingerprint ${manifest.fingerprints.dataset.slice(0, 12)} ` +
        `vs ${trainer.info.datasetFingerprint.slice(0, 12)}); set resume.allowDatasetChange to continue anyway`,
    );
  }
  return trainer;
}
