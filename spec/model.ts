// A short label for a spec's model. Pure (type-only imports): the workflow uses it for its search attribute.
import type { ModelSpec } from './types';

/** The built-in name, or `layers-N` for a model given as a list of N layers. */
export function modelLabel(model: ModelSpec): string {
  return typeof model === 'string' ? model : `layers-${model.layers.length}`;
}
