// The metrics log and TensorBoard files of one chunk, written with the commit protocol: each commit's segment of the
// log is written before its checkpoint's manifest (the commit point), its event file after it. A chunk that restores
// a checkpoint (a retry, a restart, a fallback) first drops what was logged after that checkpoint and brings the
// event files in line with the committed log, so a recovered run's curves equal the uninterrupted run's, step for
// step. Bytes go to the run's own storage, never through Temporal.
import { log } from '@temporalio/activity';
import { StorageUnavailableError, type CheckpointStore } from '../../checkpoint';
import type { RunSpec } from '../../spec/types';
import type { EvalResult } from '../../training';
import {
  dropSegmentsAfter,
  MetricsSegmentWriter,
  openRow,
  readSegment,
  writeSegment,
  type MetricsSegment,
  type StepMetrics,
} from '../../telemetry/metrics-log';
import { reconcileEventFiles, writeEventFile } from '../../telemetry/tensorboard';
import { storageUnavailable } from '../failures';
import type { CheckpointRef } from '../types';

export class ChunkCurves {
  private pending: MetricsSegment | null = null;

  private constructor(
    private readonly store: CheckpointStore,
    private readonly runId: string,
    private readonly specText: string,
    private readonly writer: MetricsSegmentWriter,
  ) {}

  /**
   * The log writer for a chunk that starts at `fromStep` from checkpoint `parent` (null: a fresh start).
   * `restored`: the trainer was not the warm one of the previous chunk (a restore or a fresh start), so anything
   * logged after `fromStep` was never committed and is dropped.
   */
  static async open(o: {
    store: CheckpointStore;
    runId: string;
    spec: RunSpec;
    parent: CheckpointRef | null;
    fromStep: number;
    restored: boolean;
    rawSteps?: number;
  }): Promise<ChunkCurves> {
    const specText = JSON.stringify(o.spec, null, 2);
    const own = o.parent !== null && o.parent.runId === o.runId;
    // A storage failure is retried like any other (the chunk's commits need the same storage); a damaged segment
    // must not stop training: the log then misses its steps, and says so when read.
    const tolerate = (what: string) => (err: unknown) => {
      if (err instanceof StorageUnavailableError) throw storageUnavailable(err, `cannot ${what} of run ${o.runId}`);
      log.warn(`metrics log: cannot ${what}`, { runId: o.runId, step: o.fromStep, error: (err as Error).message });
      return null;
    };
    if (o.restored) {
      const dropped = await dropSegmentsAfter(o.store, o.runId, o.fromStep).catch(tolerate('drop uncommitted steps'));
      const tb = await reconcileEventFiles(o.store, o.runId, o.fromStep, specText).catch(
        tolerate('reconcile the TensorBoard files'),
      );
      if (dropped?.length || tb?.deleted.length || tb?.written.length)
        log.info('metrics log resumed at the checkpoint', {
          runId: o.runId,
          step: o.fromStep,
          droppedSegments: dropped,
          eventFilesDeleted: tb?.deleted.length,
          eventFilesWritten: tb?.written.length,
        });
    }
    // The previous segment's open bucket (when the bucket goes on past this chunk's start) is carried on.
    const previous =
      own && o.fromStep > 0
        ? await readSegment(o.store, o.runId, o.fromStep).catch(tolerate('read the metrics log'))
        : null;
    const writer = new MetricsSegmentWriter(o.runId, o.fromStep, {
      rawSteps: o.rawSteps,
      continues: own,
      carried: previous ? openRow(previous) : null,
    });
    return new ChunkCurves(o.store, o.runId, specText, writer);
  }

  /** One step (a trainer's StepProgress, or a distributed round's averaged step). */
  record(p: StepMetrics): void {
    this.writer.record({
      step: p.step,
      loss: p.loss,
      accuracy: p.accuracy,
      learningRate: p.learningRate,
      samplesPerSec: p.samplesPerSec,
      ...(p.regularizationLoss !== undefined ? { regularizationLoss: p.regularizationLoss } : {}),
    });
  }

  /** Before the checkpoint at `step` is committed: its segment (steps since the last commit), durable. */
  async beforeCommit(step: number, totalSteps: number, evals: EvalResult[]): Promise<void> {
    this.pending = null;
    if (step <= this.writer.start) return; // nothing trained since the last segment: it stays as it is
    for (const e of evals) if (e.step > this.writer.start && e.step <= step) this.writer.recordEval(e);
    const seg = this.writer.cut(step, totalSteps);
    await writeSegment(this.store, seg);
    this.pending = seg;
  }

  /** After the commit: the segment's TensorBoard event file. */
  async afterCommit(): Promise<void> {
    const seg = this.pending;
    this.pending = null;
    if (seg) await writeEventFile(this.store, seg, this.specText);
  }
}
