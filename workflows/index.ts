// Workflow bundle entry: everything the worker registers.
export { trainingWorkflow } from './training';
export { drillWorkflow } from './drill';
