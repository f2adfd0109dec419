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
  // tfjs 4.22 computes no gradient of a dilated conv2d ("dilation rates greater than 1 are not yet supported in
  // gradients"): refused here, before a run starts, rather than at its first step.
  check: (o) => {
    const d = o.dilationRate as number | number[] | undefined;
    const dilated = d !== undefined && (Array.isArray(d) ? d.some((v) => v !== 1) : d !== 1);
    return dilated
      ? ['dilationRate', 'conv2d supports dilationRate 1 only (tfjs has no gradient for dilated convolutions)']
      : null;
  },
};
