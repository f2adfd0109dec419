// Mocked training activities for the in-process workflow tests: plain functions that return ChunkSummary-shaped
// summaries (no tfjs, no storage), record every call, and let a test hold a chunk open until it is released or
// cancelled (pause, stop, cancel). Every assumption the workflow tests make about the activity contract lives here.
import { Context } from '@temporalio/activity';
import type {
  CheckpointPosition,
  CheckpointRef,
  ChunkSummary,
  EvalResult,
  PrepareRunInput,
  PrepareRunResult,
  Recovery,
  RetentionInput,
  TrainChunkInput,
  TrainingActivities,
} from '../../activities/types';
import { validateSpec, type RunSpec } from '../../spec';

/** A small valid spec; the mocks decide the step counts, the workflow reads chunkSteps and the learning rate. */
export function mockSpec(overrides: { chunkSteps?: number; learningRate?: number } = {}): RunSpec {
  return validateSpec({
    model: 'mnist-mlp',
    dataset: { name: 'mnist', trainLimit: 64, testLimit: 16, validationFraction: 0 },
    epochs: 1,
    batchSize: 8,
    chunkSteps: overrides.chunkSteps ?? 2,
    seed: 1,
    optimizer: { name: 'sgd', learningRate: overrides.learningRate ?? 0.01 },
    checkpoint: { storage: 'file://unused' },
  });
}

/** A chunk the test holds open: `started` resolves with its input once the activity runs. */
export interface HeldChunk {
  started: Promise<TrainChunkInput>;
  /** Let the chunk finish all its steps. */
  release(): void;
}

interface Hold extends HeldChunk {
  markStarted(input: TrainChunkInput): void;
  released: Promise<void>;
}

export interface MockTrainingOptions {
  totalSteps: number;
  stepsPerEpoch: number;
  /** Replaces the default prepareRun (fresh start); may use `mock.checkpoint()` to create a start checkpoint. */
  prepare?: (input: PrepareRunInput, mock: MockTraining) => PrepareRunResult;
  /**
   * A run with a validation split: epoch-end evaluations are validation ones, the last chunk adds a test one (with
   * accuracy 1, better than any validation result); `stopEarlyAt` ends the run there as early stopping does, naming
   * `bestStep`'s checkpoint as its best.
   */
  validation?: { stopEarlyAt?: number; bestStep?: number };
}

export const WEIGHTS_AT = (step: number) => `sha-${step}`;

export class MockTraining {
  readonly prepareCalls: PrepareRunInput[] = [];
  readonly chunkCalls: TrainChunkInput[] = [];
  readonly chunkResults: ChunkSummary[] = [];
  readonly retentionCalls: RetentionInput[] = [];
  private readonly checkpoints = new Map<string, { pointer: CheckpointPosition; learningRate: number }>();
  private readonly holds = new Map<number, Hold>();
  private readonly recoveries = new Map<number, Recovery>();
  private seq = 0;

  constructor(readonly options: MockTrainingOptions) {}

  /** Registers a committed checkpoint (e.g. a fork source or a run's own earlier checkpoint). */
  checkpoint(runId: string, step: number, learningRate = 0.01): CheckpointPosition {
    const pointer: CheckpointPosition = {
      runId,
      id: `step-${String(step).padStart(9, '0')}-${++this.seq}`,
      step,
      epoch: Math.floor(step / this.options.stepsPerEpoch),
    };
    this.checkpoints.set(pointer.id, { pointer, learningRate });
    return pointer;
  }

  /** Holds the chunk with this call index (0-based, counted over the whole workflow chain) until released/cancelled. */
  hold(index: number): HeldChunk {
    let markStarted!: (input: TrainChunkInput) => void;
    let release!: () => void;
    const started = new Promise<TrainChunkInput>((resolve) => (markStarted = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    const hold: Hold = { started, release, markStarted, released };
    this.holds.set(index, hold);
    return hold;
  }

  /** Makes the chunk with this call index report a recovery (as after a retry or a fallback past damage). */
  recoverOn(index: number, recovery: Recovery): void {
    this.recoveries.set(index, recovery);
  }

  private evalAt(step: number, epoch: number): EvalResult {
    return { epoch, step, loss: 1 / (1 + step), accuracy: Math.min(0.99, step / this.options.totalSteps) };
  }

  activities(): TrainingActivities {
    const { totalSteps, stepsPerEpoch } = this.options;
    return {
      prepareRun: async (input) => {
        this.prepareCalls.push(input);
        if (this.options.prepare) return this.options.prepare(input, this);
        return { start: null, mode: 'fresh', totalSteps, stepsPerEpoch, skipped: [], specHash: 'mock', finished: null };
      },
      trainChunk: async (input) => {
        const index = this.chunkCalls.push(input) - 1;
        const from = input.from ? this.lookup(input.from) : null;
        const fromStep = from?.pointer.step ?? 0;
        const learningRate = input.learningRateOverride ?? from?.learningRate ?? input.spec.optimizer.learningRate;
        let stepsRun = Math.min(input.steps, totalSteps - fromStep);
        let cut = false;
        const hold = this.holds.get(index);
        if (hold) {
          hold.markStarted(input);
          cut = await this.heldUntilReleasedOrCancelled(hold);
          // A cut chunk commits at its current step: one step in.
          if (cut) stepsRun = Math.min(1, stepsRun);
        }
        const val = this.options.validation;
        if (val?.stopEarlyAt !== undefined) stepsRun = Math.min(stepsRun, val.stopEarlyAt - fromStep);
        const step = fromStep + stepsRun;
        const epoch = Math.floor(step / stepsPerEpoch);
        const stoppedEarly = val?.stopEarlyAt === step;
        const done = step >= totalSteps || stoppedEarly;
        const evals: EvalResult[] = [];
        for (let s = fromStep + 1; s <= step; s++)
          if (s % stepsPerEpoch === 0 || s === totalSteps)
            evals.push({ ...this.evalAt(s, epoch), ...(val ? { split: 'validation' as const } : {}) });
        if (val && done) evals.push({ epoch, step, split: 'test', loss: 0.5, accuracy: 1 });
        const checkpoint = this.checkpoint(input.runId, step, learningRate);
        const summary: ChunkSummary = {
          checkpoint,
          fromStep,
          step,
          totalSteps,
          epoch,
          done,
          stepsRun,
          cut,
          loss: 1 / (1 + step),
          accuracy: step / totalSteps,
          learningRate,
          evals,
          lastEval: evals.at(-1) ?? null,
          ...(stoppedEarly ? { stoppedEarly } : {}),
          ...(val?.bestStep !== undefined ? { bestStep: val.bestStep } : {}),
          samplesPerSec: 1000,
          backend: 'mock',
          commits: 1,
          source: from ? 'restored' : 'fresh',
          recovery: this.recoveries.get(index) ?? null,
          weightsSha256: WEIGHTS_AT(step),
          trainMs: 1,
          commitMs: 1,
        };
        this.chunkResults.push(summary);
        return summary;
      },
      applyRetention: async (input) => {
        this.retentionCalls.push(input);
        return { deleted: [] };
      },
    };
  }

  private lookup(ref: CheckpointRef) {
    const found = this.checkpoints.get(ref.id);
    if (!found || found.pointer.runId !== ref.runId) throw new Error(`mock: unknown checkpoint ${ref.runId}/${ref.id}`);
    return found;
  }

  /** Heartbeats (the way cancellation reaches an activity) until released (false) or cancelled (true). */
  private async heldUntilReleasedOrCancelled(hold: Hold): Promise<boolean> {
    const ctx = Context.current();
    let released = false;
    void hold.released.then(() => (released = true));
    for (;;) {
      ctx.heartbeat();
      if (released) return false;
      try {
        await ctx.sleep(20);
      } catch (err) {
        if (ctx.cancellationSignal.aborted) return true;
        throw err;
      }
    }
  }
}
