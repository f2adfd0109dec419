// One chunk of the training workflow: the trainChunk activity (or, for a distributed spec, one round of replicas and
// their sync) from the run's last checkpoint, in a scope that a pause or stop cancels. A chunk cut before it could
// hand back a summary, or one rolled back after a NaN, is run again by the loop; anything else fails the run.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  patched,
  proxyActivities,
} from '@temporalio/workflow';
import type { CheckpointRef, ChunkSummary, TrainingActivities } from '../activities/types';
import type { RunSpec } from '../spec/types';
import { heartbeatTimeoutOf, TRAINING_ACTIVITY_OPTIONS } from './policy';
import type { RunProgress } from './progress';
import { roundRunner } from './round';
import type { RunState } from './run-state';

const { trainChunk } = proxyActivities<TrainingActivities>(TRAINING_ACTIVITY_OPTIONS);

/**
 * Runs one chunk from the run's last checkpoint with the pending learning rate. Returns its summary (not yet
 * recorded), or null when the chunk is to be run again: a pause or stop reached it before it could hand back a
 * summary, or a NaN was rolled back to the same checkpoint at a lower rate.
 */
export async function runChunk(state: RunState): Promise<ChunkSummary | null> {
  const { runId, spec, progress } = state;
  // A distributed spec trains in rounds of replicas instead of chunks; without one, the commands are unchanged.
  const runner = spec.distributed ? roundRunner(progress) : trainChunk;
  const from: CheckpointRef | null = progress.lastCheckpoint
    ? { runId: progress.lastCheckpoint.runId, id: progress.lastCheckpoint.id }
    : null;
  const learningRateOverride = state.pendingLearningRate;
  const cutReason = state.stopRequested ? 'stop' : 'pause';
  const fromStep = progress.step;
  const scope = new CancellationScope();
  state.chunkScope = scope;
  let summary: ChunkSummary;
  try {
    summary = await scope.run(() =>
      runner.executeWithOptions(
        {
          ...TRAINING_ACTIVITY_OPTIONS,
          heartbeatTimeout: heartbeatTimeoutOf(spec),
          summary: `steps ${fromStep}..${Math.min(fromStep + spec.chunkSteps, progress.totalSteps || Infinity)}`,
        },
        [
          {
            runId,
            spec,
            from,
            // Until the fork's first commit, `from` is the source's checkpoint: the fork's changes apply there.
            ...(from && from.runId !== runId ? { sourceSpec: state.input.sourceSpec ?? null } : {}),
            steps: spec.chunkSteps,
            learningRateOverride,
            cutReason,
          },
        ],
      ),
    );
  } catch (err) {
    // A pause/stop that reached the activity before it could hand back a summary: try again from the same checkpoint.
    if (isCancellation(err) && !CancellationScope.current().consideredCancelled) return null;
    const rollback = rollbackAfter(err, spec, progress, from);
    if (rollback !== null) {
      state.pendingLearningRate = rollback;
      return null;
    }
    throw err;
  } finally {
    state.chunkScope = null;
  }
  if (learningRateOverride !== null && state.pendingLearningRate === learningRateOverride)
    state.pendingLearningRate = null;
  return summary;
}

/** Patch id of onNonFinite "rollback" (a chunk retried at a lower rate instead of a failed run). */
export const NONFINITE_ROLLBACK_PATCH = 'nonfinite-rollback';
const NON_FINITE = 'NonFiniteValues';
const DEFAULT_MAX_ROLLBACKS = 3;

/**
 * For a chunk that failed on a NaN or infinite value in a run with onNonFinite "rollback" and rollbacks left: the
 * halved learning rate to resume with from `from` (the last finite checkpoint: no non-finite one is ever committed),
 * recorded in the progress; null for anything else.
 */
function rollbackAfter(err: unknown, spec: RunSpec, progress: RunProgress, from: CheckpointRef | null): number | null {
  const cause = err instanceof ActivityFailure ? err.cause : null;
  if (!(cause instanceof ApplicationFailure) || cause.type !== NON_FINITE || spec.onNonFinite !== 'rollback')
    return null;
  const rollbacks = progress.rollbacks ?? [];
  if (rollbacks.length >= (spec.maxRollbacks ?? DEFAULT_MAX_ROLLBACKS) || !patched(NONFINITE_ROLLBACK_PATCH))
    return null;
  const d = (cause.details?.[0] ?? {}) as { step?: number | null; learningRate?: number | null };
  const rate = (d.learningRate ?? progress.learningRate ?? spec.optimizer.learningRate) / 2;
  progress.rollbacks = [...rollbacks, { step: d.step ?? null, from: from?.id ?? null, learningRate: rate }];
  progress.learningRateChanges.push({ step: progress.step, value: rate });
  log.warn('non-finite values: rolling back to the last finite checkpoint at half the learning rate', {
    step: d.step ?? null,
    from: from?.id ?? null,
    learningRate: rate,
  });
  return rate;
}
