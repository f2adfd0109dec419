export { createActivities, type ActivityDeps } from './training-activities';
export * from './types';
export { TrainingMetrics } from './metrics';
export { AlertSink, webhookFromEnv } from '../telemetry/alerts';
