// tfjs's cpu backend prints "Hi, looks like you are running TensorFlow.js in Node.js..." on its first tensor, on
// every backend choice (tfjs-layers and our own code touch it even when tensorflow or wasm computes). The advice
// does not apply here (backend.ts finds tfjs-node by itself), so the cpu backend is marked as already used: the
// notice is its only effect. Imported for this side effect by every module that creates tensors.
import * as tf from '@tensorflow/tfjs';

type CpuBackend = tf.KernelBackend & { firstUse?: boolean };

function quiet(b: unknown): unknown {
  if (b && typeof b === 'object' && 'firstUse' in b) (b as CpuBackend).firstUse = false;
  return b;
}

const engine = tf.engine();
const entry = engine.registryFactory.cpu as
  ((typeof engine.registryFactory)[string] & { quieted?: boolean }) | undefined;
if (entry && !entry.quieted) {
  const factory = entry.factory;
  entry.factory = () => {
    const b = factory();
    return b instanceof Promise ? b.then((x) => quiet(x) as tf.KernelBackend) : (quiet(b) as tf.KernelBackend);
  };
  entry.quieted = true;
}
quiet(engine.registry.cpu);

export {};
