import * as tf from '@tensorflow/tfjs';
import { conv2d as spec } from '../../spec/layers/conv2d';
import { fusedConvAgrees } from '../kernels/tensorflow';
import { activate } from './activations';
import { pair, ZERO_INIT, type AnyCfg, type LayerKind } from './kind';
import { fusedConv, validConv } from './ops';

export const conv2d: LayerKind = {
  spec,
  build: (c) => tf.layers.conv2d({ ...(c as AnyCfg), ...ZERO_INIT }),
  roles: ['kernel', 'bias'],
  forward: ([h], v, cfg, ctx) => {
    const strides = pair(cfg.strides);
    const dil = pair(cfg.dilationRate);
    const validStride1 =
      cfg.padding === 'valid' && strides[0] === 1 && strides[1] === 1 && dil[0] === 1 && dil[1] === 1;
    const act =
      cfg.activation === 'relu' ? 'relu' : cfg.activation == null || cfg.activation === 'linear' ? 'linear' : null;
    if (
      validStride1 &&
      ctx.numerics === 2 &&
      act &&
      v.bias &&
      fusedConvAgrees(h as tf.Tensor4D, v.kernel as tf.Tensor4D, v.bias as tf.Tensor1D, act === 'relu')
    )
      return fusedConv(act, ctx.inputGrad, ctx.readByMaxPoolOnly)(
        h as tf.Tensor4D,
        v.kernel as tf.Tensor4D,
        v.bias as tf.Tensor1D,
      );
    const y = validStride1
      ? validConv(ctx.numerics, ctx.inputGrad)(h as tf.Tensor4D, v.kernel as tf.Tensor4D)
      : tf.conv2d(h as tf.Tensor4D, v.kernel as tf.Tensor4D, strides, cfg.padding as 'valid' | 'same', 'NHWC', dil);
    return activate(v.bias ? tf.add(y, v.bias) : y, cfg.activation, ctx.isLast, ctx.numerics === 2);
  },
};
