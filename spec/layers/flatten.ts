import { INPUT_SHAPE, type LayerKindSpec } from './rules';

export const flatten: LayerKindSpec = {
  type: 'flatten',
  className: 'Flatten',
  options: { ...INPUT_SHAPE },
  weighted: false,
};
