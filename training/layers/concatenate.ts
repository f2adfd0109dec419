import * as tf from '@tensorflow/tfjs';
import { concatenate as spec } from '../../spec/layers/concatenate';
import type { AnyCfg, LayerKind } from './kind';

export const concatenate: LayerKind = {
  spec,
  build: (c) => tf.layers.concatenate(c as AnyCfg),
  roles: [],
  forward: (xs, _v, cfg) => tf.concat(xs, typeof cfg.axis === 'number' ? cfg.axis : -1),
};
