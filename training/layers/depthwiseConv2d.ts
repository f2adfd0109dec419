import * as tf from '@tensorflow/tfjs';
import { depthwiseConv2d as spec } from '../../spec/layers/depthwiseConv2d';
import { activate } from './activations';
import { pair, type AnyCfg, type LayerKind } from './kind';
import { depthwiseConv } from './ops';

export const depthwiseConv2d: LayerKind = {
  spec,
  build: (c) =>
    tf.layers.depthwiseConv2d({ ...(c as AnyCfg), depthwiseInitializer: 'zeros', biasInitializer: 'zeros' }),
  roles: ['depthwise_kernel', 'bias'],
  forward: ([h], v, cfg, ctx) => {
    const y = depthwiseConv(
      ctx.numerics,
      ctx.inputGrad,
      h as tf.Tensor4D,
      v.depthwise_kernel as tf.Tensor4D,
      pair(cfg.strides ?? 1),
      cfg.padding as 'valid' | 'same',
    );
    return activate(v.bias ? tf.add(y, v.bias) : y, cfg.activation, ctx.isLast, ctx.numerics === 2);
  },
};
