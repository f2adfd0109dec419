import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const averagePooling2d: LayerKindSpec = {
  type: 'averagePooling2d',
  className: 'AveragePooling2D',
  options: { poolSize: RULES.size2, strides: RULES.size2, padding: RULES.padding, ...INPUT_SHAPE },
  weighted: false,
};
