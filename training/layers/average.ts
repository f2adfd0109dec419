import * as tf from '@tensorflow/tfjs';
import { average as spec } from '../../spec/layers/average';
import type { AnyCfg, LayerKind } from './kind';
import { average as mean } from './merge';

export const average: LayerKind = {
  spec,
  build: (c) => tf.layers.average(c as AnyCfg),
  roles: [],
  forward: (xs) => mean(xs),
};
