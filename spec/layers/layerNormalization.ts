import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const layerNormalization: LayerKindSpec = {
  type: 'layerNormalization',
  className: 'LayerNormalization',
  options: { epsilon: RULES.epsilon, center: RULES.bool, scale: RULES.bool, ...INPUT_SHAPE },
  weighted: true,
};
