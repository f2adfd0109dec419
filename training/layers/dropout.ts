import * as tf from '@tensorflow/tfjs';
import { dropout as spec } from '../../spec/layers/dropout';
import type { AnyCfg, LayerKind } from './kind';

export const dropout: LayerKind = {
  spec,
  build: (c) => tf.layers.dropout(c as AnyCfg),
  roles: [],
  forward: ([h], _v, cfg, ctx) => {
    const rate = Number(cfg.rate);
    const mask = ctx.dropoutMask && rate > 0 ? ctx.dropoutMask(h.shape, rate) : null;
    return mask ? tf.mul(h, mask) : h;
  },
};
