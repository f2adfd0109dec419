import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const conv2d: LayerKindSpec = {
  type: 'conv2d',
  className: 'Conv2D',
  options: {
    filters: RULES.required(RULES.posInt),
    kernelSize: RULES.required(RULES.size2),
    strides: RULES.size2,
    padding: RULES.padding,
    activation: RULES.activation,
    useBias: RULES.bool,
    dilationRate: RULES.size2,
    ...INPUT_SHAPE,
  },
  weighted: true,
};
