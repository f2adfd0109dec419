// Public surface of training/: the Trainer and its snapshot types, plus the pieces tests and tools use.
export {
  Trainer,
  DATA_ORDER_NAME,
  type NamedTensorBytes,
  type TrainerState,
  type TrainerSnapshot,
  type SnapshotOptions,
  type StepProgress,
  type TrainResult,
  type TrainerInfo,
  type EvalResult,
} from './trainer';
export { Prng, PRNG_ALGORITHM, type PrngState } from './prng';
export { loadDataset, type Dataset, type Split } from './datasets';
export { buildModel, MODEL_NAMES, type Net } from './models';
export { LrSchedule, type ScheduleState } from './schedules';
