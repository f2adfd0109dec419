import { INPUT_SHAPE, type LayerKindSpec } from './rules';

export const globalMaxPooling1d: LayerKindSpec = {
  type: 'globalMaxPooling1d',
  className: 'GlobalMaxPooling1D',
  options: { ...INPUT_SHAPE },
  weighted: false,
};
