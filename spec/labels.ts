// Short labels for a spec's model and dataset, for listings and search attributes. Pure (type-only imports): the
// workflow uses them.
import type { DatasetSpec, ModelSpec } from './types';

/** The built-in or registered name, or `layers-N` for a model given as a list of N layers. */
export function modelLabel(model: ModelSpec): string {
  if (typeof model === 'string') return model;
  if ('tfjs' in model) return `tfjs-${model.tfjs.split('/').pop()}`;
  return 'registered' in model ? model.registered : `layers-${model.layers.length}`;
}

/** The built-in name, or `<format>:<file name>` for a dataset read from a file. */
export function datasetLabel(ds: DatasetSpec): string {
  if ('registered' in ds) return ds.registered;
  if (!('format' in ds)) return ds.name;
  const file = ds.path ?? ds.train ?? '';
  return `${ds.format}:${file.split('/').pop() || file}`;
}
