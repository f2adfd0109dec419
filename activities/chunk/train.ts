// The training loop of one chunk as the activity runs it: heartbeats every step, time-based commits when due, and an
// end after `steps` steps or spec.chunkSeconds of training, whichever comes first (at least one step always runs).
import type { Context } from '@temporalio/activity';
import type { RunSpec } from '../../spec/types';
import type { Trainer, TrainResult } from '../../training';
import type { TrainingMetrics } from '../metrics';
import type { ChunkHeartbeat, ChunkSummary, TrainChunkInput } from '../types';
import type { ChunkCommits } from './commits';

export async function trainWithHeartbeats(
  ctx: Context,
  trainer: Trainer,
  commits: ChunkCommits,
  input: TrainChunkInput,
  spec: RunSpec,
  metrics: TrainingMetrics,
): Promise<{ result: TrainResult; samplesPerSec: number }> {
  // Where the chunk ends does not change the numbers: the next chunk continues from its checkpoint.
  const deadline = Date.now() + spec.chunkSeconds * 1000;
  let samplesPerSec = 0;
  let lastHeartbeat: ChunkHeartbeat | undefined;
  const result = await trainer.train({
    maxSteps: input.steps,
    shouldStop: () => ctx.cancellationSignal.aborted || Date.now() >= deadline,
    // Epoch-end evaluation can take a while: keep heartbeating (same details) so it is not taken for a dead worker.
    onEvalProgress: () => ctx.heartbeat(lastHeartbeat),
    onStep: async (p) => {
      samplesPerSec = p.samplesPerSec;
      commits.curves?.record(p);
      const hb: ChunkHeartbeat = {
        step: p.step,
        totalSteps: p.totalSteps,
        epoch: p.epoch,
        loss: p.loss,
        accuracy: p.accuracy,
        learningRate: p.learningRate,
        samplesPerSec: p.samplesPerSec,
        lastCommitted: commits.lastCommitted,
      };
      lastHeartbeat = hb;
      metrics.progress(input.runId, p.step, p.samplesPerSec);
      ctx.heartbeat(hb);
      if (commits.due(p.step, p.totalSteps)) {
        await commits.commit('time');
        lastHeartbeat = { ...hb, lastCommitted: commits.lastCommitted };
        ctx.heartbeat(lastHeartbeat);
      }
    },
  });
  return { result, samplesPerSec };
}

/** The chunk's summary for the workflow: ids and small numbers only. */
export function summarize(
  trainer: Trainer,
  result: TrainResult,
  o: Pick<
    ChunkSummary,
    | 'checkpoint'
    | 'fromStep'
    | 'cut'
    | 'samplesPerSec'
    | 'backend'
    | 'commits'
    | 'source'
    | 'recovery'
    | 'trainMs'
    | 'commitMs'
  >,
): ChunkSummary {
  const state = trainer.state;
  return {
    ...o,
    step: state.step,
    totalSteps: state.totalSteps,
    epoch: state.epoch,
    done: trainer.done,
    stepsRun: result.stepsRun,
    loss: state.metrics.lastLoss,
    accuracy: state.metrics.lastAccuracy,
    learningRate: state.learningRate,
    evals: result.evals,
    lastEval: state.metrics.evals[state.metrics.evals.length - 1] ?? null,
    weightsSha256: trainer.weightsSha256(),
  };
}
