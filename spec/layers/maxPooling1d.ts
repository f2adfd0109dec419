import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const maxPooling1d: LayerKindSpec = {
  type: 'maxPooling1d',
  className: 'MaxPooling1D',
  options: { poolSize: RULES.posInt, strides: RULES.posInt, padding: RULES.padding, ...INPUT_SHAPE },
  weighted: false,
};
