import * as tf from '@tensorflow/tfjs';
import { layerNormalization as spec } from '../../spec/layers/layerNormalization';
import type { AnyCfg, LayerKind } from './kind';

export const layerNormalization: LayerKind = {
  spec,
  build: (c) =>
    tf.layers.layerNormalization({ ...(c as AnyCfg), axis: -1, betaInitializer: 'zeros', gammaInitializer: 'ones' }),
  roles: ['gamma', 'beta'],
  // Over the last axis of each example, with its own statistics in training and inference alike.
  forward: ([h], v, cfg) => {
    const { mean, variance } = tf.moments(h, -1, true);
    let y = tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, Number(cfg.epsilon ?? 1e-3))));
    if (v.gamma) y = tf.mul(y, v.gamma);
    if (v.beta) y = tf.add(y, v.beta);
    return y;
  },
};
