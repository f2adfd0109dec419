// One round of a distributed run (spec.distributed): the N replica activities in parallel, each training
// syncEverySteps steps of its shard from the round's global checkpoint, then one sync activity combines their results
// in replica order and commits the next global checkpoint. runChunk (chunk.ts) calls runRound where a single run
// calls trainChunk, so pause, stop, learning-rate changes, retention and continue-as-new stay one implementation.
// A replica whose worker dies is retried alone, from the round's start; the finished replicas' results are kept
// (they are durable activity results, and their tensors are in the store).
import { ApplicationFailure, type ActivityOptions, proxyActivities } from '@temporalio/workflow';
import type { ReplicaActivities, ReplicaResult, RoundSummary } from '../activities/replica-types';
import type { CheckpointRef, ChunkSummary, TrainChunkInput } from '../activities/types';
import { roundSteps } from '../spec/helpers';
import type { RunSpec } from '../spec/types';
import { ACTIVITY_RETRY, heartbeatTimeoutOf, TRAINING_ACTIVITY_OPTIONS } from './policy';
import type { RoundProgress, RunProgress } from './progress';

const { trainReplica } = proxyActivities<ReplicaActivities>(TRAINING_ACTIVITY_OPTIONS);
const syncOptions: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '60s',
  retry: ACTIVITY_RETRY,
};
const { syncReplicas } = proxyActivities<ReplicaActivities>(syncOptions);

/**
 * Events a round may add to the history: per replica 3 activity events and, at worst, a workflow task (3) for its
 * completion; the sync and the retention (3 each) and their workflow tasks.
 */
export const roundEvents = (replicas: number) => 6 * replicas + 12;

/**
 * Rounds per workflow run before continue-as-new: about the 200 chunks of a single run's worth of events (~2,000),
 * so a wide run's history stays as small as a single one's.
 */
export function roundsPerRun(spec: RunSpec, chunksPerRun: number): number {
  if (!spec.distributed) return chunksPerRun;
  return Math.max(1, Math.floor((chunksPerRun * roundEvents(1)) / roundEvents(spec.distributed.replicas)));
}

/**
 * Stands in for the trainChunk activity in the training workflow: each "chunk" is one round, started from the chunk's
 * checkpoint, reading the run's position from its progress, and recording the round's replicas there.
 */
export function roundRunner(progress: RunProgress) {
  return {
    async executeWithOptions(_options: ActivityOptions, [c]: [TrainChunkInput]): Promise<ChunkSummary> {
      const round = await runRound({
        runId: c.runId,
        spec: c.spec,
        from: c.from,
        step: progress.step,
        stepsPerEpoch: progress.stepsPerEpoch,
        totalSteps: progress.totalSteps,
        epochAnchor: progress.epochAnchor ?? 0,
        round: progress.chunks,
        learningRateOverride: c.learningRateOverride ?? null,
      });
      progress.lastRound = { round: round.round, syncMs: round.syncMs, replicas: round.replicas };
      // A round that does not advance would be run again forever: fail the run instead, saying where. A round that
      // fell back past a damaged round checkpoint starts earlier, and may end at or before where the run was.
      const fellBack = round.recovery !== null && round.recovery.restoredFrom !== round.recovery.requested;
      if (round.step <= progress.step && !round.done && !fellBack)
        throw ApplicationFailure.nonRetryable(
          `round ${round.round} ended at step ${round.step}, not past ${progress.step}: the round checkpoint does not advance`,
          'RoundStalled',
        );
      return round;
    },
  };
}

export interface RoundInput {
  runId: string;
  spec: RunSpec;
  /** The round's global checkpoint; null for the first round of a fresh run. */
  from: CheckpointRef | null;
  step: number;
  stepsPerEpoch: number;
  totalSteps: number;
  /** Where epochs are counted from (roundSteps): 0 unless the replica count changed. */
  epochAnchor: number;
  /** Rounds committed before this one (names and summaries only). */
  round: number;
  learningRateOverride: number | null;
}

/** One round: N replicas in parallel, then the sync. Throws a cancellation when the round is cut (pause/stop). */
export async function runRound(i: RoundInput): Promise<RoundSummary & { replicas: RoundProgress['replicas'] }> {
  const dist = i.spec.distributed;
  if (!dist) throw new Error('runRound: the spec has no distributed block');
  const steps = roundSteps(i.step, i.stepsPerEpoch, i.totalSteps, dist.syncEverySteps, i.epochAnchor);
  const replicas = Array.from({ length: dist.replicas }, (_, r) => r);
  const results: ReplicaResult[] = await Promise.all(
    replicas.map((r) =>
      trainReplica.executeWithOptions(
        {
          ...TRAINING_ACTIVITY_OPTIONS,
          heartbeatTimeout: heartbeatTimeoutOf(i.spec),
          // The Web UI shows the round's replicas side by side, each labelled.
          summary: `replica ${r}/${dist.replicas}: round ${i.round}, steps ${i.step}..${i.step + steps}`,
        },
        [
          {
            runId: i.runId,
            spec: i.spec,
            from: i.from,
            replica: r,
            round: i.round,
            steps,
            learningRateOverride: i.learningRateOverride,
          },
        ],
      ),
    ),
  );
  const summary = await syncReplicas.executeWithOptions(
    { ...syncOptions, summary: `sync round ${i.round}: ${dist.replicas} replicas at step ${i.step + steps}` },
    [{ runId: i.runId, spec: i.spec, from: i.from, round: i.round, results }],
  );
  return {
    ...summary,
    replicas: results.map((x) => ({
      replica: x.replica,
      worker: x.worker,
      attempt: x.attempt,
      samplesPerSec: x.samplesPerSec,
      trainMs: x.trainMs,
      reused: x.reused,
    })),
  };
}
