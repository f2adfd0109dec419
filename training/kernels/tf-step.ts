// A Step kernel for the tensorflow backend (tfjs-node) with the same results and no host-side arrays.
//
// tfjs's relu gradient is dy * step(x). tfjs-node 4.22's Step builds `ones(x.shape)` in JavaScript and uploads
// it to TensorFlow on every call (5.5 MB for the mnist-cnn's first conv output at batch 64), then runs Fill and
// two Selects over the whole tensor: about a tenth of a training step. This one computes the same values with
// TensorFlow ops only: Greater and Cast give exactly 1 where x > 0 and +0 elsewhere (as `where(x > 0, ones,
// fill(0))` does), and the last Select keeps NaN inputs as they were (as tfjs-node's does). Bitwise the same
// output for every float32 input, so checkpoints written before it resume with the same math; any other dtype
// or a nonzero alpha goes to tfjs-node's own kernel.
import * as tf from '@tensorflow/tfjs';

let registered = false;

/** Replaces tfjs-node's Step kernel; call once the tensorflow backend is registered. Idempotent. */
export function registerTensorflowStep(): void {
  if (registered) return;
  const original = tf.getKernel('Step', 'tensorflow');
  if (!original) return; // no tensorflow backend in this process
  tf.unregisterKernel('Step', 'tensorflow');
  tf.registerKernel({
    kernelName: 'Step',
    backendName: 'tensorflow',
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.Tensor;
      const alpha = (args.attrs as { alpha?: number } | undefined)?.alpha ?? 0;
      if (x.dtype !== 'float32' || alpha !== 0) return original.kernelFunc(args);
      return tf.tidy(() => tf.where(tf.isNaN(x), x, tf.cast(tf.greater(x, tf.scalar(0, 'float32')), 'float32')));
    },
  });
  registered = true;
}
