import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const batchNormalization: LayerKindSpec = {
  type: 'batchNormalization',
  className: 'BatchNormalization',
  options: { momentum: RULES.rate, epsilon: RULES.epsilon, center: RULES.bool, scale: RULES.bool, ...INPUT_SHAPE },
  weighted: true,
};
