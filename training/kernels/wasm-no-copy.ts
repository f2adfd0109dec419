// Identity, and Cast to the tensor's own dtype, for the wasm backend without a copy. tfjs's gradient tape keeps every
// input it saves for a backward pass as a clone (an Identity), and tfjs's relu gradient casts step(x), already float32,
// to float32; tfjs-backend-wasm 4.22 copies the data for both: in an mnist-cnn step about 16 copies, 4 of them of the
// first conv's 5.5 MB output, about 3.5 ms. These return the same data with one more reference, as the cpu backend's
// kernels and tfjs-node's do and as the wasm backend's own Reshape already does. That is safe because no kernel writes
// into an input's memory: every wasm kernel, ours included, writes only the output it allocates (makeOutput), and a
// variable's assign replaces its data rather than overwriting it. Same values bit for bit (they are the same bytes).
// Strings and casts to another dtype go to the backend's kernels.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap };

const originals: { Identity?: tf.KernelConfig; Cast?: tf.KernelConfig } = {};

function shared(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
}

function backendKernel(name: 'Identity' | 'Cast', args: KernelArgs): tf.TensorInfo {
  const k = originals[name];
  if (!k) throw new Error(`wasm ${name}: the backend kernel is missing`);
  return k.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

/** The kernel functions; exported for tests, registered by registerWasmNoCopy. */
export function identityWasm(args: KernelArgs): tf.TensorInfo {
  return (args.inputs.x as tf.TensorInfo).dtype === 'string' ? backendKernel('Identity', args) : shared(args);
}

export function castWasm(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const { dtype } = args.attrs as unknown as tf.CastAttrs;
  return dtype === x.dtype && x.dtype !== 'string' ? shared(args) : backendKernel('Cast', args);
}

/** Puts ours in front of the backend's Identity and Cast (kept for strings and casts to another dtype). */
export function registerWasmNoCopy(): void {
  for (const [name, kernelFunc] of [
    ['Identity', identityWasm],
    ['Cast', castWasm],
  ] as const) {
    const existing = tf.getKernel(name, 'wasm');
    if (!existing || existing.kernelFunc === (kernelFunc as unknown as tf.KernelFunc)) continue;
    originals[name] = existing;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
}
