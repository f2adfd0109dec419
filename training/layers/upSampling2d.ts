import * as tf from '@tensorflow/tfjs';
import { upSampling2d as spec } from '../../spec/layers/upSampling2d';
import { pair, type AnyCfg, type LayerKind } from './kind';

export const upSampling2d: LayerKind = {
  spec,
  build: (c) => tf.layers.upSampling2d(c as AnyCfg),
  roles: [],
  // Nearest neighbour as tiles of rows, then of pixels (tile's gradient, a sum every backend has, for ranks up to 4;
  // resizeNearestNeighbor's gradient kernel is not on wasm).
  forward: ([h], _v, cfg) => {
    const [b, height, width, c] = h.shape;
    const [sh, sw] = pair(cfg.size ?? 2);
    const rows = tf.tile(tf.reshape(h, [b * height, 1, width * c]), [1, sh, 1]);
    const pixels = tf.tile(tf.reshape(rows, [b * height * sh * width, 1, c]), [1, sw, 1]);
    return tf.reshape(pixels, [b, height * sh, width * sw, c]);
  },
};
