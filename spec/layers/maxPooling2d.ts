import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const maxPooling2d: LayerKindSpec = {
  type: 'maxPooling2d',
  className: 'MaxPooling2D',
  options: { poolSize: RULES.size2, strides: RULES.size2, padding: RULES.padding, ...INPUT_SHAPE },
  weighted: false,
};
