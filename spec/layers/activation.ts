import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const activation: LayerKindSpec = {
  type: 'activation',
  className: 'Activation',
  options: { activation: RULES.required(RULES.activation), ...INPUT_SHAPE },
  weighted: false,
};
