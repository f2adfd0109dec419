// What a drill will compare, decided from the run's checkpoint list alone (no verification, no training): used by
// the drill on the workers and by the CLI, which refuses a request the list already answers before it starts a drill.
import type { CheckpointSummary } from '../checkpoint/types';
import type { RunSpec } from '../spec/types';
import { DrillFailureTypes } from './drill-types';
import { nonRetryable } from './failures';
import { FailureTypes } from './types';

/**
 * The checks of a drill's request that need only the checkpoint list (no verification, no training): the asked
 * checkpoint exists, and a checkpoint to compare with exists (the next one, or exactly `steps` later). The CLI runs
 * them before it starts a drill workflow; throws the ApplicationFailure the drill itself would fail with.
 */
export function checkDrillRequest(
  all: CheckpointSummary[],
  asked: string | null,
  steps: number | null,
  spec: RunSpec,
  where: string,
): void {
  if (!all.length) throw nonRetryable(DrillFailureTypes.NoCheckpoint, `${where} has no checkpoints to drill`);
  let source: CheckpointSummary | undefined;
  if (asked) {
    source = all.find((c) => c.id === asked);
    if (!source)
      throw nonRetryable(
        FailureTypes.CheckpointNotFound,
        `${where} has no checkpoint ${asked} (it has ${all.map((c) => c.id).join(', ')})`,
      );
  } else {
    // The newest checkpoint that has a later one (the drill may pick an older one when that one is damaged).
    const newest = Math.max(...all.map((c) => c.step));
    source = all.filter((c) => c.step < newest && c.valid !== false).pop();
    if (!source) return; // the drill names this case itself
  }
  chooseTarget(all, source, steps, spec, where);
}

/** The stored checkpoint the replay is compared with: the next one after `source`, or the one exactly `steps` later. */
export function chooseTarget(
  all: CheckpointSummary[],
  source: CheckpointSummary,
  steps: number | null,
  spec: RunSpec,
  where: string,
): CheckpointSummary {
  const later = all.filter((c) => c.step > source.step);
  if (steps !== null) {
    if (!(Number.isInteger(steps) && steps >= 1 && steps <= spec.chunkSteps))
      throw nonRetryable(
        FailureTypes.InvalidSpec,
        `steps must be an integer in 1..${spec.chunkSteps} (one chunk), got ${steps}`,
      );
    const t = later.find((c) => c.step === source.step + steps);
    if (!t)
      throw nonRetryable(
        DrillFailureTypes.NoLaterCheckpoint,
        `${where} has no checkpoint at step ${source.step + steps} (${steps} steps after ${source.id}); ` +
          `later checkpoints are at steps ${later.map((c) => c.step).join(', ') || 'none'}`,
      );
    return t;
  }
  if (!later.length)
    throw nonRetryable(
      DrillFailureTypes.NoLaterCheckpoint,
      `${where} has no checkpoint after ${source.id} (step ${source.step}) to compare against; drill an earlier one`,
    );
  return later[0];
}
