// The applyRetention activity: deletes the run's checkpoints that no retention rule keeps (keep latest N, best K by
// a metric, every N steps), never the ones the workflow protects nor the best one early stopping names.
import type { CheckpointManager } from '../checkpoint';
import type { WatchMetric } from '../spec/catalog';
import { choiceMetric } from '../spec/helpers';
import type { RunSpec } from '../spec/types';
import type { TrainerState } from '../training';
import { storageUnavailable } from './failures';
import { checkSpec, type TrainingDeps } from './training-deps';
import type { RetentionInput } from './types';

const choiceMetricOf = (spec: RunSpec, metric: WatchMetric) => {
  const { name, mode } = choiceMetric(spec, metric);
  return { metric: name, mode };
};

/**
 * The checkpoint early stopping names as the run's best (at the step of its best validation evaluation, recorded in
 * the newest checkpoint's state): retention keeps it whatever the other rules say.
 */
async function earlyStoppingBest(manager: CheckpointManager): Promise<string[]> {
  const list = await manager.list();
  const newest = list.reduce<(typeof list)[number] | null>((a, c) => (a === null || c.step > a.step ? c : a), null);
  if (!newest) return [];
  const state = (await manager.readManifest(newest.id)).state as TrainerState;
  const bestStep = state.metrics?.earlyStopping?.bestStep;
  return bestStep == null ? [] : list.filter((c) => c.step === bestStep).map((c) => c.id);
}

export async function applyRetention(d: TrainingDeps, input: RetentionInput): Promise<{ deleted: string[] }> {
  const spec = checkSpec(input.spec);
  const ck = spec.checkpoint;
  const manager = d.managerFor(spec, input.runId);
  const protect = [...input.protect, ...(spec.earlyStopping ? await earlyStoppingBest(manager) : [])];
  const res = await manager
    .applyRetention(
      {
        keepLatest: ck.keepLatest,
        keepBest: ck.keepBest ? { k: ck.keepBest.k, ...choiceMetricOf(spec, ck.keepBest.metric) } : undefined,
        keepEverySteps: ck.keepEverySteps,
      },
      protect,
    )
    .catch((err: unknown) => {
      throw storageUnavailable(err, `retention of run ${input.runId} failed`);
    });
  return { deleted: res.deleted };
}
