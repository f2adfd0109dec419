import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

const above1 = (v: unknown) => (Array.isArray(v) ? v.some((d) => Number(d) > 1) : v !== undefined && Number(v) > 1);

/**
 * Refused before a run starts: strides and dilation above 1 together (Keras refuses them too) and 'causal' padding
 * (tfjs's conv1d cannot run it, so an export would not predict in tfjs). The options may also be a tfjs layer's config
 * (sizes as arrays), as a converted model's layer is checked.
 */
function checkConv1d(o: Record<string, unknown>): [string, string] | null {
  if (o.padding === 'causal')
    return [
      'padding',
      'conv1d supports "valid" and "same" (tfjs cannot run "causal"; pad with zeros before it instead)',
    ];
  if (above1(o.strides) && above1(o.dilationRate))
    return ['dilationRate', 'conv1d takes strides or dilationRate above 1, not both (as Keras)'];
  return null;
}

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
  check: checkConv1d,
  checkConfig: checkConv1d,
};
