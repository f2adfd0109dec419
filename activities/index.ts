export { createActivities, type ActivityDeps } from './training-activities';
export * from './types';
