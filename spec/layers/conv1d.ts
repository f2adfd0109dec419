import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const conv1d: LayerKindSpec = {
  type: 'conv1d',
  className: 'Conv1D',
  options: {
    filters: RULES.required(RULES.posInt),
    kernelSize: RULES.required(RULES.posInt),
    strides: RULES.posInt,
    // Not 'causal': tfjs cannot run it (its conv1d has no causal mode), so an export would not predict in tfjs.
    padding: RULES.padding,
    activation: RULES.activation,
    useBias: RULES.bool,
    dilationRate: RULES.posInt,
    ...INPUT_SHAPE,
  },
  weighted: true,
  // Keras refuses both at once; so does tfjs.
  check: (o) =>
    o.strides !== undefined && o.strides !== 1 && o.dilationRate !== undefined && o.dilationRate !== 1
      ? ['dilationRate', 'conv1d takes strides or dilationRate above 1, not both (as Keras)']
      : null,
};
