import { INPUT_SHAPE, type LayerKindSpec } from './rules';

export const globalAveragePooling2d: LayerKindSpec = {
  type: 'globalAveragePooling2d',
  className: 'GlobalAveragePooling2D',
  options: { ...INPUT_SHAPE },
  weighted: false,
};
