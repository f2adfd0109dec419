import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const upSampling2d: LayerKindSpec = {
  type: 'upSampling2d',
  className: 'UpSampling2D',
  options: {
    size: RULES.size2,
    interpolation: { ok: (v: unknown) => v === 'nearest', what: '"nearest" (the only one supported)' },
    ...INPUT_SHAPE,
  },
  weighted: false,
};
