import * as tf from '@tensorflow/tfjs';
import { dense as spec } from '../../spec/layers/dense';
import { activate } from './activations';
import { ZERO_INIT, type AnyCfg, type LayerKind } from './kind';
import { matMulOp } from './ops';

export const dense: LayerKind = {
  spec,
  build: (c) => tf.layers.dense({ ...(c as AnyCfg), ...ZERO_INIT }),
  roles: ['kernel', 'bias'],
  forward: ([h], v, cfg, ctx) => {
    const matMul = matMulOp(ctx.numerics, ctx.inputGrad);
    const inner = h.shape[h.rank - 1];
    const flat = h.rank === 2 ? (h as tf.Tensor2D) : tf.reshape(h, [-1, inner]);
    let y: tf.Tensor = matMul(flat as tf.Tensor2D, v.kernel as tf.Tensor2D);
    if (h.rank !== 2) y = tf.reshape(y, [...h.shape.slice(0, -1), y.shape[1] as number]);
    return activate(v.bias ? tf.add(y, v.bias) : y, cfg.activation, ctx.isLast, ctx.numerics === 2);
  },
};
