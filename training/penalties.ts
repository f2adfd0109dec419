// Keras weight regularizers (L1, L2, L1L2) of a model file, as a term of the training loss.
import * as tf from '@tensorflow/tfjs';

/** Keras's penalty: the sum over the weights of l1 * sum(|w|) + l2 * sum(w^2), in float32, in the given order. */
export function penaltyLoss(penalties: Array<{ param: { variable: tf.Variable }; l1: number; l2: number }>): tf.Scalar {
  return tf.tidy(() => {
    let total: tf.Scalar = tf.scalar(0);
    for (const { param, l1, l2 } of penalties) {
      const w = param.variable;
      if (l1) total = tf.add(total, tf.mul(l1, tf.sum(tf.abs(w))));
      if (l2) total = tf.add(total, tf.mul(l2, tf.sum(tf.square(w))));
    }
    return total;
  });
}
