// The training workflow's state: the progress the query shows, the steering that signals and the update set (pause,
// stop, a new learning rate), how a chunk's summary and the run's end are recorded, and what continue-as-new carries.
// State and handlers only: the one command issued here is publish()'s search-attribute upsert.
import { type CancellationScope, log, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { ChunkSummary, CheckpointRef, PrepareRunResult } from '../activities/types';
import { EXTRA_METRICS } from '../spec/catalog';
import { datasetLabel, modelLabel } from '../spec/labels';
import type { RunSpec } from '../spec/types';
import {
  drillSignal,
  pauseSignal,
  progressQuery,
  resumeSignal,
  setLearningRateUpdate,
  stopSignal,
} from './definitions';
import type { RunProgress, RunResult } from './progress';

export interface TrainingInput {
  spec: RunSpec;
  /** Fork source: start from another run's checkpoint. */
  from?: CheckpointRef | null;
  /** The fork source run's spec: the fork's changes to it take effect at the fork point (see spec/fork.ts). */
  sourceSpec?: RunSpec | null;
  /** Whether the namespace has our custom search attributes registered (set by the client). */
  searchAttributes?: boolean;
  /** Continue-as-new after this many chunks (default CHUNKS_PER_RUN; the server may suggest it earlier). */
  chunksPerRun?: number;
  /** State carried across continue-as-new. */
  carried?: CarriedState;
}

export interface CarriedState {
  progress: RunProgress;
  paused: boolean;
  stopRequested: boolean;
  pendingLearningRate: number | null;
  weightsSha256: string | null;
}

const MAX_RECORDED_RECOVERIES = 50;

/** The progress of a run that has not started yet. */
function freshProgress(runId: string, spec: RunSpec): RunProgress {
  return {
    runId,
    status: 'starting',
    step: 0,
    totalSteps: 0,
    stepsPerEpoch: 0,
    epoch: 0,
    loss: null,
    accuracy: null,
    learningRate: spec.optimizer.learningRate,
    samplesPerSec: null,
    lastCheckpoint: null,
    lastEval: null,
    bestAccuracy: null,
    chunks: 0,
    recoveries: [],
    skippedCheckpoints: [],
    learningRateChanges: [],
    startMode: null,
    backend: null,
    continuedAsNew: 0,
    result: null,
  };
}

export class RunState {
  readonly runId = workflowInfo().workflowId;
  readonly spec: RunSpec;
  readonly progress: RunProgress;
  paused: boolean;
  stopRequested: boolean;
  pendingLearningRate: number | null;
  weightsSha256: string | null;
  /** The scope of the chunk in flight: a pause or stop cancels it, so the chunk commits where it is and returns. */
  chunkScope: CancellationScope | null = null;
  chunksThisRun = 0;
  /** Set by the chunk in which early stopping ended the run (its last: the run is done). */
  stoppedEarly = false;

  constructor(readonly input: TrainingInput) {
    const carried = input.carried;
    this.spec = input.spec;
    this.progress = carried?.progress ?? freshProgress(this.runId, input.spec);
    this.paused = carried?.paused ?? false;
    this.stopRequested = carried?.stopRequested ?? false;
    this.pendingLearningRate = carried?.pendingLearningRate ?? null;
    this.weightsSha256 = carried?.weightsSha256 ?? null;
  }

  /** The query, the signals and the update. None issues a command; pause and stop cancel the chunk in flight. */
  registerHandlers(): void {
    const progress = this.progress;
    setHandler(progressQuery, () => progress);
    setHandler(pauseSignal, () => {
      if (this.paused || progress.result) return;
      this.paused = true;
      progress.status = 'pausing';
      this.chunkScope?.cancel();
    });
    setHandler(resumeSignal, () => {
      this.paused = false;
    });
    // Progress only, no commands: replay-safe without a patch (a drill of this run reports its outcome here).
    setHandler(drillSignal, (drill) => {
      progress.lastDrill = drill;
    });
    setHandler(stopSignal, () => {
      if (this.stopRequested || progress.result) return;
      this.stopRequested = true;
      progress.status = 'stopping';
      this.chunkScope?.cancel();
    });
    setHandler(
      setLearningRateUpdate,
      (value: number) => {
        this.pendingLearningRate = value;
        progress.learningRateChanges.push({ step: progress.step, value });
        return value;
      },
      {
        validator: (value: number) => {
          // Float32 is what training computes with: a rate that rounds to 0 there would silently stop training.
          if (typeof value !== 'number' || !Number.isFinite(value) || !(Math.fround(value) > 0) || value > 10) {
            throw new Error(`learning rate must be a number > 0 and <= 10, got ${JSON.stringify(value)}`);
          }
          if (progress.result) throw new Error(`run ${this.runId} has already finished (${progress.result.status})`);
        },
      },
    );
  }

  /** Upserts the run's search attributes (a command: every call is part of the recorded order). */
  publish(): void {
    if (!this.input.searchAttributes) return;
    const { progress, spec } = this;
    upsertSearchAttributes({
      DurableTrainStatus: [progress.status],
      DurableTrainModel: [modelLabel(spec.model)],
      DurableTrainDataset: [datasetLabel(spec.dataset)],
      DurableTrainStep: [progress.step],
      ...(progress.bestAccuracy !== null ? { DurableTrainBestAccuracy: [progress.bestAccuracy] } : {}),
    });
  }

  /** Where prepareRun says the run starts: fresh, resumed from its newest checkpoint, or forked. */
  recordStart(prep: PrepareRunResult): void {
    const progress = this.progress;
    Object.assign(progress, {
      totalSteps: prep.totalSteps,
      stepsPerEpoch: prep.stepsPerEpoch,
      startMode: prep.mode,
      skippedCheckpoints: prep.skipped,
    } satisfies Partial<RunProgress>);
    // Only a run whose replica count changed has one (older histories' results have none: nothing changes for them).
    if (prep.epochAnchor) progress.epochAnchor = prep.epochAnchor;
    if (prep.start) {
      Object.assign(progress, {
        lastCheckpoint: prep.start,
        step: prep.start.step,
        epoch: prep.start.epoch,
      } satisfies Partial<RunProgress>);
      if (prep.finished) {
        this.weightsSha256 = prep.finished.weightsSha256;
        progress.lastEval = prep.finished.lastEval;
        progress.backend = prep.finished.backend;
      }
    }
    if (prep.skipped.length) log.warn('skipped damaged checkpoints', { skipped: prep.skipped });
  }

  /** A chunk's (or a round's) summary into the progress. State only, no commands: replay-safe. */
  record(s: ChunkSummary): void {
    const progress = this.progress;
    const { step, totalSteps, epoch, loss, accuracy, learningRate, samplesPerSec, backend } = s;
    Object.assign(progress, {
      step,
      totalSteps,
      epoch,
      loss,
      accuracy,
      learningRate,
      samplesPerSec,
      lastCheckpoint: s.checkpoint,
      backend,
    } satisfies Partial<RunProgress>);
    progress.chunks += 1;
    this.weightsSha256 = s.weightsSha256;
    if (s.lastEval) progress.lastEval = s.lastEval;
    if (s.bestStep != null && s.bestStep === s.checkpoint.step) progress.bestCheckpoint = s.checkpoint;
    if (s.stoppedEarly) this.stoppedEarly = true;
    // Only the evaluations that choose count for "best" (never the test split of a run with a validation split);
    // histories from before validation splits have no `split` and count as before.
    for (const e of s.evals) {
      if (e.split === 'test') continue;
      if (e.split === 'validation') progress.lastValidation = e;
      if (e.accuracy !== null && (progress.bestAccuracy === null || e.accuracy > progress.bestAccuracy))
        progress.bestAccuracy = e.accuracy;
    }
    if (s.recovery) {
      progress.recoveries.push({ ...s.recovery, step: s.fromStep });
      if (progress.recoveries.length > MAX_RECORDED_RECOVERIES) progress.recoveries.shift();
    }
  }

  /** The run's result, kept in the progress and published. */
  finish(status: RunResult['status']): RunResult {
    const progress = this.progress;
    progress.status = status;
    // A validation result is never reported as the test one (a run stopped before its end has no test result).
    const test = progress.lastEval?.split === 'validation' ? null : progress.lastEval;
    progress.result = {
      runId: this.runId,
      status,
      step: progress.step,
      totalSteps: progress.totalSteps,
      epoch: progress.epoch,
      accuracy: test?.accuracy ?? null,
      ...testMetricsOf(test),
      loss: test?.loss ?? null,
      ...(progress.lastValidation ? { validation: progress.lastValidation } : {}),
      lastCheckpoint: progress.lastCheckpoint,
      ...(progress.bestCheckpoint ? { bestCheckpoint: progress.bestCheckpoint } : {}),
      weightsSha256: this.weightsSha256,
      backend: progress.backend,
      chunks: progress.chunks,
      // Failures recovered from: a chunk retried twice after two crashes counts two.
      recoveries: progress.recoveries.reduce((n, r) => n + Math.max(1, r.attempt - 1), 0),
    };
    this.publish();
    return progress.result;
  }

  /** What the next execution of a continue-as-new starts from. */
  carried(): CarriedState {
    const { progress, paused, stopRequested, pendingLearningRate, weightsSha256 } = this;
    return { progress, paused, stopRequested, pendingLearningRate, weightsSha256 };
  }
}

/** The final test evaluation's metrics beside accuracy and loss: mse and mae (regression), those spec.metrics asks. */
function testMetricsOf(test: RunProgress['lastEval'] | undefined): Partial<RunResult> {
  return {
    ...(test?.mse !== undefined ? { mse: test.mse, mae: test.mae } : {}),
    ...Object.fromEntries(EXTRA_METRICS.flatMap((m) => (test?.[m] !== undefined ? [[m, test[m]]] : []))),
  };
}
