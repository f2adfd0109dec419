// The layer kinds a model may use, by spec name. Each kind: the options it accepts (those of the tfjs layer of the
// same name), how to build the tf.layers layer (zero-initialized: our PRNG initializes weights, never tfjs), and its
// forward pass in our training loop (dropout masks from our PRNG, batch-norm statistics updated by the trainer).
// A new kind is one entry in KINDS plus, if it has its own math, one case in forwardLayer().
import * as tf from '@tensorflow/tfjs';
import { LAYER_KINDS, type LayerSpec } from '../spec/layers';
import { TF_RELU_GRAD } from './kernels/tensorflow';

export { LayerError, checkLayerSpec, LAYER_TYPES, ACTIVATIONS, type LayerSpec } from '../spec/layers';

interface Kind {
  build: (cfg: Record<string, unknown>) => tf.layers.Layer;
}

const Z = { kernelInitializer: 'zeros', biasInitializer: 'zeros' } as const;
// tf.layers' option types are precise per layer; the spec's options were checked against `options` above.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCfg = any;

export const KINDS: Record<string, Kind> = {
  dense: {
    build: (c) => tf.layers.dense({ ...(c as AnyCfg), ...Z }),
  },
  conv2d: {
    build: (c) => tf.layers.conv2d({ ...(c as AnyCfg), ...Z }),
  },
  maxPooling2d: {
    build: (c) => tf.layers.maxPooling2d(c as AnyCfg),
  },
  averagePooling2d: {
    build: (c) => tf.layers.averagePooling2d(c as AnyCfg),
  },
  globalAveragePooling2d: {
    build: (c) => tf.layers.globalAveragePooling2d(c as AnyCfg),
  },
  flatten: { build: (c) => tf.layers.flatten(c as AnyCfg) },
  reshape: {
    build: (c) => tf.layers.reshape(c as AnyCfg),
  },
  dropout: { build: (c) => tf.layers.dropout(c as AnyCfg) },
  activation: {
    build: (c) => tf.layers.activation(c as AnyCfg),
  },
  batchNormalization: {
    build: (c) =>
      tf.layers.batchNormalization({
        ...(c as AnyCfg),
        axis: -1,
        betaInitializer: 'zeros',
        gammaInitializer: 'ones',
        movingMeanInitializer: 'zeros',
        movingVarianceInitializer: 'ones',
      }),
  },
  embedding: {
    build: (c) => tf.layers.embedding({ ...(c as AnyCfg), embeddingsInitializer: 'zeros' }),
  },
};

export const SUPPORTED_CLASSES = new Set(Object.values(LAYER_KINDS).map((k) => k.className));

/** The tf.layers layer for a checked layer spec, zero-initialized, named `name`. */
export function buildLayer(spec: LayerSpec, name: string): tf.layers.Layer {
  const { type, name: _ignored, ...options } = spec;
  void _ignored;
  return KINDS[type].build({ ...options, name });
}

type Cfg = Record<string, unknown>;
export function pair(v: unknown): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2) return [Number(v[0]), Number(v[1])];
  throw new Error(`layers: unexpected size ${JSON.stringify(v)}`);
}

// Numerics 2 on the tensorflow backend: relu whose gradient is TensorFlow's ReluGrad (one kernel instead of five).
const reluWithTfGrad = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  return {
    value: tf.relu(x),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      tf.engine().runKernel(TF_RELU_GRAD, { dy, x: saved[0] }) as tf.Tensor,
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

export const configOf = (layer: tf.layers.Layer): Cfg => layer.getConfig() as Cfg;
