// What `model` in a spec may be: a built-in name, or a list of layers (training/layers.ts checks each layer's options).
// Pure: the workflow uses modelLabel() for its search attribute.

export type BuiltinModel = 'mnist-mlp' | 'mnist-cnn';

export interface LayerListModel {
  /** Layers in order; each `{ type, ...options of the tfjs layer of that name }`. */
  layers: Array<{ type: string; [option: string]: unknown }>;
  /** Shape of one example (default: the dataset's feature shape). */
  inputShape?: number[];
}

export type ModelSpec = BuiltinModel | LayerListModel;

/** A short label for listings and search attributes: the built-in name, or `layers-N`. */
export function modelLabel(model: ModelSpec): string {
  return typeof model === 'string' ? model : `layers-${model.layers.length}`;
}
