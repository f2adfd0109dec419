import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const dropout: LayerKindSpec = {
  type: 'dropout',
  className: 'Dropout',
  options: { rate: RULES.required(RULES.rate), ...INPUT_SHAPE },
  weighted: false,
};
