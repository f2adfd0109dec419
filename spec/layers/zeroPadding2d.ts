import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const zeroPadding2d: LayerKindSpec = {
  type: 'zeroPadding2d',
  className: 'ZeroPadding2D',
  options: { padding: RULES.padding2d, ...INPUT_SHAPE },
  weighted: false,
};
