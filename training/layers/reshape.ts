import * as tf from '@tensorflow/tfjs';
import { reshape as spec } from '../../spec/layers/reshape';
import type { AnyCfg, LayerKind } from './kind';

export const reshape: LayerKind = {
  spec,
  build: (c) => tf.layers.reshape(c as AnyCfg),
  roles: [],
  forward: ([h], _v, cfg) => tf.reshape(h, [h.shape[0], ...(cfg.targetShape as number[])]),
};
