import * as tf from '@tensorflow/tfjs';
import { multiply as spec } from '../../spec/layers/multiply';
import type { AnyCfg, LayerKind } from './kind';
import { product } from './merge';

export const multiply: LayerKind = {
  spec,
  build: (c) => tf.layers.multiply(c as AnyCfg),
  roles: [],
  forward: (xs) => product(xs),
};
