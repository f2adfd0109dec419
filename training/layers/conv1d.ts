import * as tf from '@tensorflow/tfjs';
import { conv1d as spec } from '../../spec/layers/conv1d';
import { activate } from './activations';
import { ZERO_INIT, type AnyCfg, type LayerKind } from './kind';
import { validConv } from './ops';

const first = (v: unknown): number => Number(Array.isArray(v) ? v[0] : v);

export const conv1d: LayerKind = {
  spec,
  build: (c) => tf.layers.conv1d({ ...(c as AnyCfg), ...ZERO_INIT }),
  roles: ['kernel', 'bias'],
  // As conv2d's stride-1 'valid' convolution over a [1, length] image (whose gradients every backend computes, wasm
  // included), 'same' padding as explicit zeros: TensorFlow's split, the extra one after.
  forward: ([h], v, cfg, ctx) => {
    const kernel = v.kernel as tf.Tensor3D;
    const [k, ci, co] = kernel.shape;
    let x = h as tf.Tensor3D;
    if (cfg.padding === 'same' && k > 1) {
      const before = Math.floor((k - 1) / 2);
      x = tf.pad(x, [
        [0, 0],
        [before, k - 1 - before],
        [0, 0],
      ]);
    }
    const [b, len] = x.shape;
    const y4 = validConv(ctx.numerics, ctx.inputGrad)(
      tf.reshape(x, [b, 1, len, ci]),
      tf.reshape(kernel, [1, k, ci, co]),
    );
    const y = tf.reshape(y4, [b, len - first(cfg.kernelSize) + 1, co]);
    return activate(v.bias ? tf.add(y, v.bias) : y, cfg.activation, ctx.isLast, ctx.numerics === 2);
  },
};
