import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const conv1d: LayerKindSpec = {
  type: 'conv1d',
  className: 'Conv1D',
  options: {
    filters: RULES.required(RULES.posInt),
    kernelSize: RULES.required(RULES.posInt),
    strides: RULES.posInt,
    padding: RULES.padding,
    activation: RULES.activation,
    useBias: RULES.bool,
    dilationRate: RULES.posInt,
    ...INPUT_SHAPE,
  },
  weighted: true,
  check: (o) =>
    o.strides !== undefined && o.strides !== 1
      ? ['strides', 'conv1d supports strides 1 only (downsample with maxPooling1d)']
      : o.dilationRate !== undefined && o.dilationRate !== 1
        ? ['dilationRate', 'conv1d supports dilationRate 1 only']
        : null,
};
