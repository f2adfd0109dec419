import * as tf from '@tensorflow/tfjs';
import { maxPooling1d as spec } from '../../spec/layers/maxPooling1d';
import type { AnyCfg, LayerKind } from './kind';

const first = (v: unknown, dflt: number): number => (v == null ? dflt : Number(Array.isArray(v) ? v[0] : v));

export const maxPooling1d: LayerKind = {
  spec,
  build: (c) => tf.layers.maxPooling1d(c as AnyCfg),
  roles: [],
  // As 2-D max pooling over a [1, length] image.
  forward: ([h], _v, cfg) => {
    const [b, len, c] = h.shape;
    const pool = first(cfg.poolSize, 2);
    const stride = first(cfg.strides, pool);
    const y = tf.maxPool(tf.reshape(h, [b, 1, len, c]) as tf.Tensor4D, [1, pool], [1, stride], cfg.padding as 'valid');
    return tf.reshape(y, [b, y.shape[2], c]);
  },
};
