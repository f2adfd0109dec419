// The resume guards that need no backend: whether a spec can continue a checkpoint's steps per epoch, model and data.
// Pure (no tfjs), so `start` asks them too, before a new execution of a run begins: a refused resume then leaves the
// run as it was instead of failing it.
import type { Manifest } from '../../checkpoint';
import type { RunSpec } from '../../spec/types';
import { stepCounts } from '../../spec/helpers';

/**
 * Why `spec` cannot continue `manifest`'s steps per epoch (null: it can, or `trainRows` is unknown).
 */
export function stepsPerEpochProblem(manifest: Manifest, spec: RunSpec, trainRows: number | null): string | null {
  const was = (manifest.state as { stepsPerEpoch?: number }).stepsPerEpoch;
  if (trainRows === null || was === undefined) return null;
  const { stepsPerEpoch } = stepCounts(spec, trainRows);
  if (was === stepsPerEpoch) return null;
  const wasReplicas = (manifest.state as { distributed?: { replicas?: number } }).distributed?.replicas ?? 1;
  const nowReplicas = spec.distributed?.replicas ?? 1;
  if (wasReplicas !== nowReplicas)
    return (
      `checkpoint ${manifest.id} was trained by ${wasReplicas} replica${wasReplicas === 1 ? '' : 's'}, the spec has ` +
      `${nowReplicas} (distributed.replicas): each replica's share of an epoch, and so the steps per epoch ` +
      `(${was} vs ${stepsPerEpoch}), would change; distributed.replicas cannot change when resuming`
    );
  return (
    `checkpoint ${manifest.id} has ${was} steps per epoch, the spec gives ${stepsPerEpoch}: ` +
    `dataset.trainLimit and batchSize cannot change when resuming`
  );
}

/** The model and data `spec` builds, as fingerprints (the model's in the version the checkpoint records). */
export interface BuiltFingerprints {
  modelFingerprint: string;
  datasetFingerprint: string;
}

/** Why a trainer built from `spec` (its fingerprints) cannot continue `manifest` (null: it can). */
export function fingerprintProblem(manifest: Manifest, spec: RunSpec, built: BuiltFingerprints): string | null {
  if (manifest.fingerprints.model && built.modelFingerprint !== manifest.fingerprints.model)
    return `checkpoint ${manifest.id} holds a different model topology`;
  if (manifest.fingerprints.dataset !== built.datasetFingerprint && !spec.resume?.allowDatasetChange)
    return (
      `checkpoint ${manifest.id} was trained on different data (dataset fingerprint ` +
      `${manifest.fingerprints.dataset.slice(0, 12)} vs ${built.datasetFingerprint.slice(0, 12)}); ` +
      'set resume.allowDatasetChange to continue anyway'
    );
  return null;
}
