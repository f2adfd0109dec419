// The resume guards that need no backend: whether a spec can continue a checkpoint's steps per epoch, model and data.
// Pure (no tfjs), so `start` asks them too, before a new execution of a run begins: a refused resume then leaves the
// run as it was instead of failing it.
import type { Manifest } from '../../checkpoint';
import type { RunSpec } from '../../spec/types';
import type { TrainerState } from '../../training/trainer-types';
import { replicasOf } from '../../spec/helpers';
import {
  changeTopology,
  layoutAfter,
  recordedReplicas,
  stepsPerEpochOf,
  TopologyError,
  topologyRefusal,
} from '../../training/topology';

/**
 * Why `spec` cannot continue `manifest`'s steps per epoch (null: it can, or `trainRows` is unknown). Another replica
 * count than the checkpoint's is refused unless resume.allowTopologyChange allows it and the epoch under way can be
 * shared out (topology.ts).
 */
export function stepsPerEpochProblem(manifest: Manifest, spec: RunSpec, trainRows: number | null): string | null {
  const st = recordedState(manifest);
  const was = st.stepsPerEpoch as number | undefined;
  const wasReplicas = recordedReplicas(st);
  const nowReplicas = replicasOf(spec);
  if (wasReplicas !== nowReplicas && !spec.resume?.allowTopologyChange)
    return `checkpoint ${manifest.id}: ${topologyRefusal(wasReplicas, nowReplicas)}`;
  if (trainRows === null || was === undefined) return null;
  const given = stepsPerEpochOf(trainRows, wasReplicas, spec.batchSize);
  if (given !== was)
    return (
      `checkpoint ${manifest.id} has ${was} steps per epoch, the spec gives ${given}: ` +
      `dataset.trainLimit and batchSize cannot change when resuming`
    );
  if (wasReplicas === nowReplicas) return null;
  try {
    changeTopology(st, nowReplicas, trainRows, spec.batchSize, spec.epochs);
    return null;
  } catch (err) {
    if (err instanceof TopologyError) return `checkpoint ${manifest.id}: ${err.message}`;
    throw err;
  }
}

/**
 * Steps per epoch and in all, and where epochs are counted from, for `spec` continuing `manifest` over `trainRows`
 * examples: laid out anew when the replica count changes (topology.ts), or as an earlier change left them. Null when
 * the spec cannot continue the checkpoint (stepsPerEpochProblem says why) or the checkpoint records no steps per epoch.
 */
export function layoutFor(
  manifest: Manifest,
  spec: RunSpec,
  trainRows: number,
): { stepsPerEpoch: number; totalSteps: number; epochAnchor?: number } | null {
  const st = recordedState(manifest);
  if (!Number.isInteger(st.stepsPerEpoch) || stepsPerEpochProblem(manifest, spec, trainRows)) return null;
  const laid = layoutAfter(st, replicasOf(spec), trainRows, spec.batchSize, spec.epochs);
  return {
    stepsPerEpoch: laid.stepsPerEpoch,
    totalSteps: laid.totalSteps,
    ...(laid.epochAnchor ? { epochAnchor: laid.epochAnchor } : {}),
  };
}

/** A manifest's trainer state as these guards read it (a round checkpoint's also records its replicas). */
const recordedState = (manifest: Manifest) => manifest.state as TrainerState & { distributed?: { replicas?: number } };

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
