import { INPUT_SHAPE, type LayerKindSpec } from './rules';

export const globalMaxPooling2d: LayerKindSpec = {
  type: 'globalMaxPooling2d',
  className: 'GlobalMaxPooling2D',
  options: { ...INPUT_SHAPE },
  weighted: false,
};
