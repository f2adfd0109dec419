import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const reshape: LayerKindSpec = {
  type: 'reshape',
  className: 'Reshape',
  options: { targetShape: RULES.required(RULES.shape), ...INPUT_SHAPE },
  weighted: false,
};
