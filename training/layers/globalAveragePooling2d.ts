import * as tf from '@tensorflow/tfjs';
import { globalAveragePooling2d as spec } from '../../spec/layers/globalAveragePooling2d';
import type { AnyCfg, LayerKind } from './kind';

export const globalAveragePooling2d: LayerKind = {
  spec,
  build: (c) => tf.layers.globalAveragePooling2d(c as AnyCfg),
  roles: [],
  forward: ([h]) => tf.mean(h, [1, 2]),
};
