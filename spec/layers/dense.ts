import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const dense: LayerKindSpec = {
  type: 'dense',
  className: 'Dense',
  options: { units: RULES.required(RULES.posInt), activation: RULES.activation, useBias: RULES.bool, ...INPUT_SHAPE },
  weighted: true,
};
