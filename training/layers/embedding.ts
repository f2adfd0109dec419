import * as tf from '@tensorflow/tfjs';
import { embedding as spec } from '../../spec/layers/embedding';
import type { AnyCfg, LayerKind } from './kind';

export const embedding: LayerKind = {
  spec,
  build: (c) => tf.layers.embedding({ ...(c as AnyCfg), embeddingsInitializer: 'zeros' }),
  roles: ['embeddings'],
  // One-hot times the table: gradients by matMul on every backend (gather's needs UnsortedSegmentSum, which the wasm
  // backend lacks).
  forward: ([h], v) => {
    const table = v.embeddings as tf.Tensor2D;
    const [inputDim, outputDim] = table.shape;
    const ids = tf.cast(tf.reshape(h, [-1]), 'int32');
    const rows = tf.matMul(tf.oneHot(ids, inputDim, 1, 0, 'float32') as tf.Tensor2D, table);
    return tf.reshape(rows, [...h.shape, outputDim]);
  },
};
