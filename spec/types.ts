// Kept for existing imports: the spec types now come from the one schema in ./schema (z.output of it).
// Type-only re-exports, so importing this module (as workflows do) never loads zod.
export type {
  AugmentSpec,
  CheckpointSpec,
  DatasetName,
  DatasetSpec,
  ModelName,
  ModelSpec,
  LayerListModel,
  TaskName,
  EvalMetricName,
  LossName,
  OptimizerName,
  OptimizerSpec,
  ResumeSpec,
  DistributedSpec,
  RunSpec,
  RunSpecInput,
  ScheduleSpec,
} from './schema';
