// The worker's metrics live in telemetry/ (a prom-client registry); the activities import them from here.
export { TrainingMetrics, failureReason } from '../telemetry/metrics';
