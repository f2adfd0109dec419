import * as tf from '@tensorflow/tfjs';
import { add as spec } from '../../spec/layers/add';
import type { AnyCfg, LayerKind } from './kind';
import { sum } from './merge';

export const add: LayerKind = { spec, build: (c) => tf.layers.add(c as AnyCfg), roles: [], forward: (xs) => sum(xs) };
