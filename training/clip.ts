// Gradient clipping (optimizer.clipNorm / clipValue), as Keras does it: clipNorm scales each weight's gradient down to
// that L2 norm when it is longer; clipValue clamps every element. Deterministic on a backend; a gradient within the
// bound is passed on untouched (the same tensor), so a run without clipping computes exactly as before.
import * as tf from '@tensorflow/tfjs';
import type { OptimizerSpec } from '../spec/types';

/**
 * The gradients to apply. Returns the input map when nothing is clipped; otherwise a new map whose clipped tensors
 * are new (listed in `created`, for the caller to dispose once applied).
 */
export function clipGradients(
  grads: Map<string, tf.Tensor>,
  o: Pick<OptimizerSpec, 'clipNorm' | 'clipValue'>,
): { grads: Map<string, tf.Tensor>; created: tf.Tensor[] } {
  if (o.clipNorm === undefined && o.clipValue === undefined) return { grads, created: [] };
  const out = new Map<string, tf.Tensor>();
  const created: tf.Tensor[] = [];
  for (const [name, g] of grads) {
    let t = g;
    if (o.clipNorm !== undefined) {
      const norm = tf.tidy(() => tf.norm(g)).dataSync()[0];
      if (norm > o.clipNorm) t = tf.tidy(() => g.mul(tf.scalar(o.clipNorm! / norm, 'float32')));
    } else if (o.clipValue !== undefined) {
      t = tf.clipByValue(g, -o.clipValue, o.clipValue);
    }
    if (t !== g) created.push(t);
    out.set(name, t);
  }
  return { grads: out, created };
}
