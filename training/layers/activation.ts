import * as tf from '@tensorflow/tfjs';
import { activation as spec } from '../../spec/layers/activation';
import { activate } from './activations';
import type { AnyCfg, LayerKind } from './kind';

export const activation: LayerKind = {
  spec,
  build: (c) => tf.layers.activation(c as AnyCfg),
  roles: [],
  forward: ([h], _v, cfg, ctx) => activate(h, cfg.activation, ctx.isLast, ctx.numerics === 2),
};
