// Losses and the per-batch bookkeeping of evaluation, for classification, regression and binary.
import * as tf from '@tensorflow/tfjs';
import type { RunSpec } from '../spec/types';

export function argmaxRow(v: Float32Array | Int32Array | Uint8Array, row: number, NUM_CLASSES: number): number {
  let best = 0;
  let bestVal = v[row * NUM_CLASSES];
  for (let c = 1; c < NUM_CLASSES; c++) {
    const x = v[row * NUM_CLASSES + c];
    if (x > bestVal) {
      bestVal = x;
      best = c;
    }
  }
  return best;
}

export interface EvalAcc {
  loss: number;
  correct: number;
  abs: number;
  sq: number;
  /** Classification and binary: each row's predicted class and label, for metrics of the whole split. */
  predicted: number[];
  labels: number[];
  /** Binary: each row's logit (the order the ROC curve needs). */
  scores: number[];
}
export const newEvalAcc = (): EvalAcc => ({
  loss: 0,
  correct: 0,
  abs: 0,
  sq: 0,
  predicted: [],
  labels: [],
  scores: [],
});

/**
 * Binary cross-entropy of one logit `z` for label `y` (0 or 1), in float64: -y log s(z) - (1 - y) log(1 - s(z)),
 * written max(z, 0) - z y + log(1 + e^-|z|) so no large |z| overflows.
 */
export function binaryLoss(z: number, y: number): number {
  return Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
}

/** Mean binary cross-entropy of logits [batch, 1] for targets 0/1 [batch, 1], the same stable form. */
export function sigmoidCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D, weights?: tf.Tensor2D): tf.Scalar {
  const z = logits;
  const terms = tf.add(tf.sub(tf.relu(z), tf.mul(z, targets)), tf.log1p(tf.exp(tf.neg(tf.abs(z)))));
  // Class weights scale each example's term, the mean stays over the batch (Keras's class_weight).
  return tf.mean(weights ? tf.mul(terms, weights) : terms) as tf.Scalar;
}

/** The regression loss of one residual `d` (huber with delta 1, as Keras). */
export function regressionLoss(name: RunSpec['loss'], d: number): number {
  const a = Math.abs(d);
  if (name === 'mae') return a;
  if (name === 'huber') return a <= 1 ? 0.5 * d * d : a - 0.5;
  return d * d;
}

/** Mean regression loss over the batch. */
export function regressionLossTensor(name: RunSpec['loss'], y: tf.Tensor2D, target: tf.Tensor2D): tf.Scalar {
  const d = tf.sub(y, target);
  if (name === 'mae') return tf.mean(tf.abs(d)) as tf.Scalar;
  if (name === 'huber') {
    const a = tf.abs(d);
    const quad = tf.minimum(a, 1);
    return tf.mean(tf.add(tf.mul(0.5, tf.square(quad)), tf.sub(a, quad))) as tf.Scalar;
  }
  return tf.mean(tf.square(d)) as tf.Scalar;
}

/** Mean softmax cross-entropy over the batch. */
export function softmaxCrossEntropy(logits: tf.Tensor2D, oneHot: tf.Tensor2D): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1))) as tf.Scalar;
}
