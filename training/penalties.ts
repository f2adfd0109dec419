// Keras weight regularizers (L1, L2, L1L2) of a model file, as a term of the training loss, and its weight constraints
// (MaxNorm, MinMaxNorm, UnitNorm, NonNeg), applied to the weights after each update.
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

/** Keras's backend epsilon, which its norm constraints add to the norms. */
const EPSILON = 1e-7;

export interface Constraint {
  param: { name: string; variable: tf.Variable };
  kind: 'MaxNorm' | 'MinMaxNorm' | 'UnitNorm' | 'NonNeg';
  /** null: every axis (the norm of the whole weight). */
  axis: number[] | null;
  minValue: number;
  maxValue: number;
  rate: number;
}

/** The constrained value of `w`, computed as Keras's constraint classes compute it (float32). */
export function constrained(w: tf.Tensor, c: Omit<Constraint, 'param'>): tf.Tensor {
  return tf.tidy(() => {
    if (c.kind === 'NonNeg') return tf.mul(w, tf.cast(tf.greaterEqual(w, 0), 'float32'));
    const axis = c.axis === null ? w.shape.map((_, i) => i) : c.axis.map((a) => (a < 0 ? a + w.rank : a));
    const norms = tf.sqrt(tf.sum(tf.square(w), axis, true));
    if (c.kind === 'UnitNorm') return tf.div(w, tf.add(EPSILON, norms));
    const desired =
      c.kind === 'MaxNorm'
        ? tf.clipByValue(norms, 0, c.maxValue)
        : tf.add(tf.mul(c.rate, tf.clipByValue(norms, c.minValue, c.maxValue)), tf.mul(1 - c.rate, norms));
    return tf.mul(w, tf.div(desired, tf.add(EPSILON, norms)));
  });
}

/** Applies each constraint to its weight, as Keras does after an optimizer update (frozen weights are not updated). */
export function applyConstraints(constraints: Constraint[], frozen: ReadonlySet<string>): void {
  for (const c of constraints) {
    if (frozen.has(c.param.name)) continue;
    const next = constrained(c.param.variable, c);
    c.param.variable.assign(next);
    next.dispose();
  }
}
