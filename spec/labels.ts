// Short labels for a spec's model and dataset, for listings and search attributes. Pure (type-only imports): the
// workflow uses them.
import type { DatasetSpec, ModelSpec } from './types';

/** The built-in name, or `layers-N` for a model given as a list of N layers. */
export function modelLabel(model: ModelSpec): string {
  return typeof model === 'string' ? model : `layers-${model.layers.length}`;
}

/** The built-in name, or `<format>:<file name>` for a dataset read from a file. */
export function datasetLabel(ds: DatasetSpec): string {
  if (!('format' in ds)) return ds.name;
  return `${ds.format}:${ds.path.split('/').pop() || ds.path}`;
}
