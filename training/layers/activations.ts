// Activations by tfjs name, as every layer kind with an `activation` option applies them.
import * as tf from '@tensorflow/tfjs';
import { reluGrad, TF_RELU_GRAD } from '../kernels/tensorflow';

// Numerics 2 on the tensorflow backend: relu whose gradient is TensorFlow's ReluGrad (one kernel instead of five).
const reluWithTfGrad = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  return {
    value: tf.relu(x),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => reluGrad(dy, saved[0]),
  };
}) as unknown as Parameters<typeof tf.customGrad<tf.Tensor>>[0]);

/**
 * An activation by tfjs name. `softmax` on the last layer is left to the loss (logits), elsewhere refused.
 * `nativeGrads` (numerics 2) uses the backend's own relu gradient kernel where we have one (tensorflow).
 */
export function activate(x: tf.Tensor, activation: unknown, isLast: boolean, nativeGrads = false): tf.Tensor {
  switch (activation) {
    case undefined:
    case null:
    case 'linear':
      return x;
    case 'relu':
      if (nativeGrads && x.dtype === 'float32' && tf.getKernel(TF_RELU_GRAD, tf.getBackend())) return reluWithTfGrad(x);
      return tf.relu(x);
    case 'relu6':
      return tf.relu6(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'tanh':
      return tf.tanh(x);
    case 'elu':
      return tf.elu(x);
    case 'selu':
      return tf.selu(x);
    case 'softplus':
      return tf.softplus(x);
    case 'softsign':
      return tf.div(x, tf.add(tf.abs(x), 1));
    case 'softmax':
      if (isLast) return x;
  }
  throw new Error(`layers: unsupported activation ${JSON.stringify(activation)}`);
}
