// Restoring a trainer from a verified checkpoint, behind the resume guards: a checkpoint continues only where its
// results stay exact (same backend, same gradient math, same data position, same model, same data), unless the spec
// allows otherwise.
import type { Manifest } from '../../checkpoint';
import type { RunSpec } from '../../spec/types';
import { builtinTrainRows } from '../../spec/helpers';
import { Trainer, type SnapshotOptions } from '../../training';
import type { BackendInfo } from '../../training/backend';
import { restoreDecision } from '../../training/numerics';
import { recordedReplicas } from '../../training/topology';
import { snapshotOf } from '../commit';
import { classifyFailure, nonRetryable } from '../failures';
import { FailureTypes } from '../types';
import { fingerprintProblem, stepsPerEpochProblem } from './resume-guards';

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
  const stepsProblem = stepsPerEpochProblem(manifest, spec, builtinTrainRows(spec));
  if (stepsProblem) throw guard(stepsProblem);
  let trainer: Trainer;
  try {
    // A checkpoint of another replica count (a distributed run resumed as a single one) is re-laid out for this one.
    trainer = await Trainer.fromSnapshot(spec, snapshot, { topologyFrom: recordedReplicas(snapshot.state), ...opts });
  } catch (err) {
    // The backend failing (out of memory, a wasm trap) or a model that cannot be built says nothing of the checkpoint.
    const failure = classifyFailure(err, `restoring checkpoint ${manifest.id}`);
    if (failure !== err) throw failure;
    throw guard(`cannot restore checkpoint ${manifest.id}: ${(err as Error).message}`);
  }
  const fpProblem = fingerprintProblem(manifest, spec, trainer.info);
  if (fpProblem) {
    trainer.dispose();
    throw guard(fpProblem);
  }
  return trainer;
}
