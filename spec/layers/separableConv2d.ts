import { checkDepthwise, DEPTHWISE_OPTIONS } from './depthwiseConv2d';
import { RULES, type LayerKindSpec } from './rules';

export const separableConv2d: LayerKindSpec = {
  type: 'separableConv2d',
  className: 'SeparableConv2D',
  options: { filters: RULES.required(RULES.posInt), ...DEPTHWISE_OPTIONS },
  weighted: true,
  check: checkDepthwise('separableConv2d'),
  checkConfig: checkDepthwise('separableConv2d'),
};
