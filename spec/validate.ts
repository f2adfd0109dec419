// Kept for existing imports: validation now lives in the one schema (./schema); the name lists and limits in
// ./catalog, the helpers in ./helpers.
export { SpecError, validateSpec } from './schema';
export { DATASETS, DATASET_SIZES, MODELS, MODEL_LAYERS, OPTIMIZERS, SCHEDULES } from './catalog';
export { mergeSpec, stepCounts } from './helpers';
