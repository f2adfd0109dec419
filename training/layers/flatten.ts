import * as tf from '@tensorflow/tfjs';
import { flatten as spec } from '../../spec/layers/flatten';
import type { AnyCfg, LayerKind } from './kind';

export const flatten: LayerKind = {
  spec,
  build: (c) => tf.layers.flatten(c as AnyCfg),
  roles: [],
  forward: ([h]) => tf.reshape(h, [h.shape[0], -1]),
};
