import * as tf from '@tensorflow/tfjs';
import { globalMaxPooling2d as spec } from '../../spec/layers/globalMaxPooling2d';
import type { AnyCfg, LayerKind } from './kind';

export const globalMaxPooling2d: LayerKind = {
  spec,
  build: (c) => tf.layers.globalMaxPooling2d(c as AnyCfg),
  roles: [],
  forward: ([h]) => tf.max(h, [1, 2]),
};
