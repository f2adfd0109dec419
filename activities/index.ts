export { createActivities, type ActivityDeps } from './training-activities';
export * from './types';
export { TrainingMetrics, MetricsRegistry } from './metrics';
