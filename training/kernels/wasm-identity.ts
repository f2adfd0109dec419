// Identity for the wasm backend without a copy. tfjs's gradient tape keeps every input it saves for a backward pass
// as a clone (an Identity), and tfjs-backend-wasm 4.22's Identity copies the data: in an mnist-cnn step about 14
// copies, 3 of them of the first conv's 5.5 MB output, about 2.5 ms. This one returns the same data with one more
// reference, as the cpu backend's Identity and tfjs-node's do and as the wasm backend's own Reshape already does.
// That is safe because no kernel writes into an input's memory: every wasm kernel, ours included, writes only the
// output it allocates (makeOutput), and a variable's assign replaces its data rather than overwriting it. Same values
// bit for bit (they are the same bytes). Strings go to the backend's kernel.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap };

let original: tf.KernelConfig | undefined;

/** The kernel function; exported for tests, registered by registerWasmIdentity. */
export function identityWasm(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  if (x.dtype === 'string') {
    if (!original) throw new Error('wasm Identity: the backend kernel is missing');
    return original.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
}

/** Puts ours in front of the backend's Identity (kept for strings). */
export function registerWasmIdentity(): void {
  const existing = tf.getKernel('Identity', 'wasm');
  if (!existing || existing.kernelFunc === (identityWasm as unknown as tf.KernelFunc)) return;
  original = existing;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: identityWasm as unknown as tf.KernelFunc,
  });
}
