import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const embedding: LayerKindSpec = {
  type: 'embedding',
  className: 'Embedding',
  options: {
    inputDim: RULES.required(RULES.posInt),
    outputDim: RULES.required(RULES.posInt),
    ...INPUT_SHAPE,
    inputLength: RULES.posInt,
  },
  weighted: true,
};
