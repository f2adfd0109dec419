// A large built-in model for benchmarks and tests of the checkpoint path: `{ "registered": "wide-mlp" }`, an MLP on
// MNIST-shaped input (any input shape: it is flattened) with hidden layers of 4096, 4096 and 1024 units. 24.2 million
// float32 parameters, 97 MB of weights (290 MB with Adam's two slots per weight): large enough that a checkpoint's
// snapshot, hash and write cost is measurable against a training step. Registered in every process that loads the
// models (training/models.ts), so the stock worker and its training processes know it.
import * as tf from '@tensorflow/tfjs';
import type { ModelBuilder } from './registry';

export const WIDE_MLP = 'wide-mlp';
export const WIDE_MLP_UNITS: readonly number[] = [4096, 4096, 1024];

export const wideMlp: ModelBuilder = ({ inputShape, outputs }) => {
  // The weights come from the run's seeded PRNG (or a checkpoint): zeros here keep the build cheap.
  const z = { kernelInitializer: 'zeros' as const, biasInitializer: 'zeros' as const };
  const layers: tf.layers.Layer[] = [tf.layers.flatten({ name: 'flatten', inputShape })];
  WIDE_MLP_UNITS.forEach((units, i) =>
    layers.push(tf.layers.dense({ name: `wide${i + 1}`, units, activation: 'relu', ...z })),
  );
  layers.push(tf.layers.dense({ name: 'out', units: outputs, activation: outputs === 1 ? 'linear' : 'softmax', ...z }));
  return tf.sequential({ layers });
};
