import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

/** The options depthwiseConv2d and separableConv2d share (separableConv2d adds filters), as Keras and tfjs name them. */
export const DEPTHWISE_OPTIONS = {
  kernelSize: RULES.required(RULES.size2),
  strides: RULES.size2,
  padding: RULES.padding,
  depthMultiplier: RULES.posInt,
  activation: RULES.activation,
  useBias: RULES.bool,
  dilationRate: RULES.size2,
  ...INPUT_SHAPE,
};

const isOne = (v: unknown) => v === undefined || v === 1 || (Array.isArray(v) && v.every((d) => d === 1));

/**
 * Refused before a run starts: dilation (tfjs computes no gradient of a dilated depthwise convolution) and unequal
 * strides (TensorFlow's depthwise convolution has none: the tensorflow backend, and Keras with an export, could not
 * run it). The options may also be a tfjs layer's config (sizes as arrays), as a converted model's layer is checked.
 */
export const checkDepthwise =
  (type: string) =>
  (o: Record<string, unknown>): [string, string] | null =>
    !isOne(o.dilationRate)
      ? ['dilationRate', `${type} supports dilationRate 1 only (tfjs has no gradient for dilated convolutions)`]
      : Array.isArray(o.strides) && o.strides[0] !== o.strides[1]
        ? [
            'strides',
            `${type} supports equal strides only, e.g. 2 or [2, 2] (TensorFlow's depthwise convolution has no other)`,
          ]
        : null;

export const depthwiseConv2d: LayerKindSpec = {
  type: 'depthwiseConv2d',
  className: 'DepthwiseConv2D',
  options: DEPTHWISE_OPTIONS,
  weighted: true,
  check: checkDepthwise('depthwiseConv2d'),
  checkConfig: checkDepthwise('depthwiseConv2d'),
};
