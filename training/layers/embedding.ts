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
    // One-hot as int32, then cast: the wasm backend's OneHot writes int32 ones into a float32 tensor when asked for
    // float32 (read back as 1.4e-45), so every row looked up was zero there.
    const rows = tf.matMul(tf.cast(tf.oneHot(ids, inputDim, 1, 0, 'int32'), 'float32') as tf.Tensor2D, table);
    return tf.reshape(rows, [...h.shape, outputDim]);
  },
};
