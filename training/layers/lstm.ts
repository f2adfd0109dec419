import * as tf from '@tensorflow/tfjs';
import { lstm as spec } from '../../spec/layers/lstm';
import { activate } from './activations';
import type { LayerKind } from './kind';
import { gate, maskOf, outputOf, projectInputs, recur, recurrentConfig } from './recurrent';

export const lstm: LayerKind = {
  spec,
  build: (c) => tf.layers.lstm({ ...recurrentConfig(c), unitForgetBias: true }),
  roles: ['kernel', 'recurrent_kernel', 'bias'],
  // Keras's unit_forget_bias: the forget gate's bias starts at one.
  initialize: (role, shape) => {
    if (role !== 'bias') return null;
    const units = shape[0] / 4;
    return new Float32Array(shape[0]).fill(1, units, 2 * units);
  },
  // Gates in Keras's order (input, forget, cell, output): c = f c + i g, h = o act(c).
  forward: ([x], v, cfg, ctx) => {
    const units = (v.recurrent_kernel as tf.Tensor2D).shape[0];
    const b = x.shape[0];
    const steps = projectInputs(x, v.kernel as tf.Tensor2D, v.bias, cfg, ctx);
    const recMask = maskOf(ctx, [b, units], cfg.recurrentDropout);
    let h: tf.Tensor = tf.zeros([b, units]);
    let c: tf.Tensor = tf.zeros([b, units]);
    const states: tf.Tensor[] = [];
    for (const xw of steps) {
      const z = tf.add(xw, recur(ctx, recMask ? tf.mul(h, recMask) : h, v.recurrent_kernel!));
      const [zi, zf, zc, zo] = tf.split(z, 4, 1);
      c = tf.add(tf.mul(gate(zf, cfg), c), tf.mul(gate(zi, cfg), activate(zc, cfg.activation, false)));
      h = tf.mul(gate(zo, cfg), activate(c, cfg.activation, false));
      states.push(h);
    }
    return outputOf(states, cfg);
  },
};
