// Before `start` begins a new execution of a run that has checkpoints: the resume guards a worker would apply at its
// first chunk (steps per epoch, replicas, model, data), asked here so that a spec the run cannot continue with is
// refused with nothing started, and a stopped run stays stopped instead of becoming failed.
import { CheckpointManager, checkpointKeysFromEnv, openStore, type Manifest } from '../checkpoint';
import type { RunSpec } from '../spec';
import { fingerprintProblem, stepsPerEpochProblem } from '../activities/chunk/resume-guards';
import { recordedFingerprintVersion } from '../training/model-fingerprint';
import type { PreflightResult } from '../training/preflight';
import { CliError, EXIT } from './common';

/** One quick attempt per request: a refusal answers at once, and an unreachable store is left to the workers. */
export const QUICK = {
  DURABLE_TRAIN_S3_MAX_ATTEMPTS: '1',
  DURABLE_TRAIN_S3_TIMEOUT_MS: '5000',
  DURABLE_TRAIN_GCS_MAX_ATTEMPTS: '1',
  DURABLE_TRAIN_GCS_TIMEOUT_MS: '5000',
  DURABLE_TRAIN_AZURE_MAX_ATTEMPTS: '1',
  DURABLE_TRAIN_AZURE_TIMEOUT_MS: '5000',
};

/**
 * The manifest of the run's newest checkpoint not known to be invalid, or null (no checkpoints, or the store cannot
 * be read from here: the workers name that).
 */
export async function newestManifest(spec: RunSpec, runId: string): Promise<Manifest | null> {
  try {
    const store = openStore(spec.checkpoint.storage, process.cwd(), { ...process.env, ...QUICK });
    const manager = new CheckpointManager(store, runId, { keys: checkpointKeysFromEnv() });
    const newest = (await manager.list()).filter((c) => c.valid !== false).pop();
    return newest ? await manager.readManifest(newest.id) : null;
  } catch {
    return null;
  }
}

/** Why `spec` cannot continue `manifest` (null: nothing here says it cannot). `built` is what preflight built. */
export function resumeProblem(manifest: Manifest, spec: RunSpec, built: PreflightResult['built']): string | null {
  // Without a build (a model registered in a worker) the replica count is still checked: it needs no data.
  if (!built) return stepsPerEpochProblem(manifest, spec, null);
  const steps = stepsPerEpochProblem(manifest, spec, built.trainRows);
  if (steps) return steps;
  let version: 1 | 2;
  try {
    version = recordedFingerprintVersion(manifest.state as { fingerprintVersion?: unknown });
  } catch {
    return null; // a version this CLI does not know: the worker names it
  }
  const modelFingerprint = built.modelFingerprints?.[version] ?? manifest.fingerprints.model;
  return fingerprintProblem(manifest, spec, { modelFingerprint, datasetFingerprint: built.datasetFingerprint });
}

/** Refuses (exit 2, nothing started) a spec the run's newest checkpoint (`manifest`) cannot continue with. */
export function assertResumable(
  spec: RunSpec,
  runId: string,
  built: PreflightResult['built'],
  manifest: Manifest,
): void {
  const problem = resumeProblem(manifest, spec, built);
  if (problem)
    throw new CliError(
      `run ${runId} cannot continue with this spec: ${problem}. Nothing was started and the run is as it was; ` +
        'start it with the spec it was trained with, or fork it under a new run id',
      EXIT.usage,
    );
}
