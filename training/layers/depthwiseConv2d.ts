import * as tf from '@tensorflow/tfjs';
import { depthwiseConv2d as spec } from '../../spec/layers/depthwiseConv2d';
import { activate } from './activations';
import { pair, type AnyCfg, type Cfg, type ForwardContext, type LayerKind, type Vars } from './kind';
import { depthwiseConv } from './ops';

/** The depthwise convolution of a depthwiseConv2d or separableConv2d layer (its strides and padding), before the rest. */
export function depthwiseOf(h: tf.Tensor, v: Vars, cfg: Cfg, ctx: ForwardContext): tf.Tensor4D {
  return depthwiseConv(
    ctx.numerics,
    ctx.inputGrad,
    h as tf.Tensor4D,
    v.depthwise_kernel as tf.Tensor4D,
    pair(cfg.strides ?? 1),
    cfg.padding as 'valid' | 'same',
  );
}

export const depthwiseConv2d: LayerKind = {
  spec,
  build: (c) =>
    tf.layers.depthwiseConv2d({ ...(c as AnyCfg), depthwiseInitializer: 'zeros', biasInitializer: 'zeros' }),
  roles: ['depthwise_kernel', 'bias'],
  forward: ([h], v, cfg, ctx) => {
    const y = depthwiseOf(h, v, cfg, ctx);
    return activate(v.bias ? tf.add(y, v.bias) : y, cfg.activation, ctx.isLast, ctx.numerics === 2);
  },
};
