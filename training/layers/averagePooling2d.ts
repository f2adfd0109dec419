import * as tf from '@tensorflow/tfjs';
import { averagePooling2d as spec } from '../../spec/layers/averagePooling2d';
import { pair, type AnyCfg, type LayerKind } from './kind';

export const averagePooling2d: LayerKind = {
  spec,
  build: (c) => tf.layers.averagePooling2d(c as AnyCfg),
  roles: [],
  forward: ([h], _v, cfg) =>
    tf.avgPool(h as tf.Tensor4D, pair(cfg.poolSize), pair(cfg.strides), cfg.padding as 'valid' | 'same'),
};
