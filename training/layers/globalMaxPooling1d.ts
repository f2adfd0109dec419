import * as tf from '@tensorflow/tfjs';
import { globalMaxPooling1d as spec } from '../../spec/layers/globalMaxPooling1d';
import type { AnyCfg, LayerKind } from './kind';

export const globalMaxPooling1d: LayerKind = {
  spec,
  build: (c) => tf.layers.globalMaxPooling1d(c as AnyCfg),
  roles: [],
  forward: ([h]) => tf.max(h, 1),
};
