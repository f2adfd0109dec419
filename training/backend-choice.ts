// Which backend a new run trains on, when the process chooses (DURABLE_TRAIN_BACKEND unset). TensorFlow's kernels win
// on models with work in their steps (the mnist-cnn trains 3x faster there than on wasm), but each of its ops costs
// about 13 us of eager dispatch whatever its size, and a small model's step is 60-85 such ops: on scikit-learn-sized
// models wasm's 1-3 us kernels take half the time or less. So a model whose step is small trains on wasm. The choice is
// made once, when the run starts; its checkpoints record the backend, and every later chunk, restore and resume of
// the run computes on that backend (a switch would change the float32 results and so the weights).
//
// Measured per step on this kind of machine (batch 32, Adam, ms tensorflow / wasm): digits MLP 64-64-10 1.9 / 0.9;
// 64-256-256-10 3.6 / 2.6; mnist-mlp 3.0 / 2.1; 64-512-512-10 5.9 / 7.1; digits CNN with 16 filters 2.9 / 1.5, 64
// filters 3.3 / 3.4, 128 filters 4.9 / 6.5; mnist-cnn 13.4 / 39.8. Convolutions cost wasm about three times what a
// dense layer's multiply-adds do; the two backends meet near 4 M weighted multiply-adds per step.
import type * as tf from '@tensorflow/tfjs';
import type { BackendName } from './backend';

/** Weighted multiply-adds per step at or below which a run trains on wasm rather than tensorflow. */
export const SMALL_STEP_WORK = 4e6;
/** What a convolution's multiply-add costs wasm, in dense ones. */
const CONV_WEIGHT = 3;

const product = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * A model's multiply-adds per step, weighted: each layer's kernels (weights of rank 2 and more; biases and scales cost
 * little) times the positions of its output they apply at (a dense layer's 1, a convolution's height times width),
 * convolutions (kernels of rank 3 and more) times CONV_WEIGHT, all times the batch size. Infinity when an output
 * dimension is unknown (a sequence of any length): such a model is not known to be small.
 */
export function stepWork(model: tf.LayersModel, batchSize: number): number {
  let perExample = 0;
  for (const layer of model.layers) {
    const kernels = layer.trainableWeights.filter((w) => w.shape.length >= 2);
    if (kernels.length === 0) continue;
    const shape = (Array.isArray(layer.outputShape[0]) ? layer.outputShape[0] : layer.outputShape) as Array<
      number | null
    >;
    const positions = shape.slice(1, -1);
    if (positions.some((d) => d === null)) return Infinity;
    const at = product(positions as number[]);
    for (const k of kernels) perExample += product(k.shape as number[]) * at * (k.shape.length >= 3 ? CONV_WEIGHT : 1);
  }
  return perExample * batchSize;
}

export interface BackendChoice {
  name: BackendName;
  /** Why, for the log: the step's work against the threshold. */
  reason: string;
}

/**
 * The backend a new run trains on in a process whose default is `dflt`: wasm for a small step when the default is
 * tensorflow (and wasm can be used), else the default.
 */
export function backendForNewRun(
  dflt: BackendName,
  model: tf.LayersModel,
  batchSize: number,
  wasmUsable: boolean,
): BackendChoice {
  const work = stepWork(model, batchSize);
  const m = (n: number) => `${(n / 1e6).toPrecision(2)} M`;
  if (dflt !== 'tensorflow' || !wasmUsable) return { name: dflt, reason: `the process's backend` };
  if (work <= SMALL_STEP_WORK)
    return {
      name: 'wasm',
      reason:
        `a small model: ${m(work)} weighted multiply-adds per step, at most ${m(SMALL_STEP_WORK)}, where wasm's ` +
        `kernels beat tensorflow's per-op dispatch (DURABLE_TRAIN_BACKEND=tensorflow keeps every run on tensorflow)`,
    };
  return {
    name: 'tensorflow',
    reason: `${Number.isFinite(work) ? m(work) : 'unbounded'} weighted multiply-adds per step, over ${m(SMALL_STEP_WORK)}`,
  };
}
