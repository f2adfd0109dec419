// The training loop of one chunk as the activity runs it: heartbeats every step, time-based commits when due, and an
// end after `steps` steps or spec.chunkSeconds of training, whichever comes first (at least one step always runs).
import type { Context } from '@temporalio/activity';
import type { RunSpec } from '../../spec/types';
import type { Trainer, TrainResult } from '../../training';
import type { TrainingMetrics } from '../metrics';
import type { ChunkHeartbeat, ChunkSummary, TrainChunkInput } from '../types';
import type { ChunkCommits } from './commits';

/**
 * The chunk's heartbeats. The last one is kept so it can be sent again (with the newest commit) while nothing else
 * would heartbeat: a commit waiting on storage, an epoch-end evaluation. Details are never sent empty: a retried
 * attempt reads `lastCommitted` from them.
 */
export class ChunkHeartbeats {
  private last: ChunkHeartbeat | undefined;
  constructor(
    private readonly ctx: Context,
    private readonly lastCommitted: () => ChunkHeartbeat['lastCommitted'],
  ) {}

  send(hb: ChunkHeartbeat): void {
    this.last = hb;
    this.ctx.heartbeat(hb);
  }

  /** The last heartbeat again, with the newest commit (nothing before the first step: there is nothing to say). */
  again(): void {
    if (this.last) this.send({ ...this.last, lastCommitted: this.lastCommitted() });
  }
}

export async function trainWithHeartbeats(
  ctx: Context,
  beats: ChunkHeartbeats,
  trainer: Trainer,
  commits: ChunkCommits,
  input: TrainChunkInput,
  spec: RunSpec,
  metrics: TrainingMetrics,
): Promise<{ result: TrainResult; samplesPerSec: number }> {
  // Where the trainer stands, at once: a cold start (data loaded, checkpoint restored) has something to heartbeat
  // before its first step, which a large model may take long to finish. samplesPerSec 0: no step yet.
  const at = trainer.position;
  beats.send({
    step: at.step,
    totalSteps: at.totalSteps,
    epoch: at.epoch,
    loss: at.lastLoss ?? NaN,
    accuracy: at.lastAccuracy,
    learningRate: at.learningRate,
    samplesPerSec: 0,
    lastCommitted: commits.lastCommitted,
  });
  // Where the chunk ends does not change the numbers: the next chunk continues from its checkpoint.
  const deadline = Date.now() + spec.chunkSeconds * 1000;
  let samplesPerSec = 0;
  const result = await trainer
    .train({
      maxSteps: input.steps,
      // Early stopping names its best checkpoint: every epoch end is committed (the chunk ends there).
      stopAtEpochEnd: !!spec.earlyStopping,
      shouldStop: () => ctx.cancellationSignal.aborted || Date.now() >= deadline,
      // Epoch-end evaluation can take a while: keep heartbeating (same details) so it is not taken for a dead worker.
      onEvalProgress: () => beats.again(),
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
        metrics.progress(input.runId, p.step, p.samplesPerSec);
        beats.send(hb);
        // Training waits only for the snapshot (and for the previous persist, if it is still running).
        if (commits.due(p.step, p.totalSteps)) {
          await commits.start('time');
          beats.again();
        }
      },
    })
    .catch(async (err: unknown) => {
      await commits.drain(); // no persist outlives the attempt
      throw err;
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
    ...(trainer.stoppedEarly ? { stoppedEarly: true } : {}),
    ...(state.metrics.earlyStopping ? { bestStep: state.metrics.earlyStopping.bestStep } : {}),
    weightsSha256: trainer.weightsSha256(),
  };
}
