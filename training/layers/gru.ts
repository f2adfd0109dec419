import * as tf from '@tensorflow/tfjs';
import { gru as spec } from '../../spec/layers/gru';
import { activate } from './activations';
import type { LayerKind } from './kind';
import { gate, maskOf, outputOf, projectInputs, recur, recurrentConfig } from './recurrent';

export const gru: LayerKind = {
  spec,
  // tfjs's GRU (Keras's reset_after=False): the reset gate applies before the recurrent product.
  build: (c) => tf.layers.gru(recurrentConfig(c)),
  roles: ['kernel', 'recurrent_kernel', 'bias'],
  // Gates in Keras's order (update z, reset r, candidate): h = z h + (1 - z) act(x_h + (r h) U_h).
  forward: ([x], v, cfg, ctx) => {
    const units = (v.recurrent_kernel as tf.Tensor2D).shape[0];
    const b = x.shape[0];
    const steps = projectInputs(x, v.kernel as tf.Tensor2D, v.bias, cfg, ctx);
    const recMask = maskOf(ctx, [b, units], cfg.recurrentDropout);
    const [uzr, uh] = tf.split(v.recurrent_kernel!, [2 * units, units], 1);
    let h: tf.Tensor = tf.zeros([b, units]);
    const states: tf.Tensor[] = [];
    for (const xw of steps) {
      const hm = recMask ? tf.mul(h, recMask) : h;
      const [xz, xr, xh] = tf.split(xw, 3, 1);
      const [rz, rr] = tf.split(recur(ctx, hm, uzr), 2, 1);
      const z = gate(tf.add(xz, rz), cfg);
      const r = gate(tf.add(xr, rr), cfg);
      const candidate = activate(tf.add(xh, recur(ctx, tf.mul(r, hm), uh)), cfg.activation, false);
      h = tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), candidate));
      states.push(h);
    }
    return outputOf(states, cfg);
  },
};
