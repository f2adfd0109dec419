// The layer registry's training half: every layer kind a model may use, one module each under training/layers/ (how
// to build its tf.layers layer, zero-initialized; its forward pass in our training loop, with dropout masks from our
// PRNG; the roles of its weights), registered in KIND_LIST below. Each module's tfjs-free half (its options and their
// checks, its tfjs/Keras class name) lives in spec/layers/<kind>.ts and is registered in spec/layers.ts, which the spec
// schema imports without tfjs. A new layer kind: those two files and one line in each registry.
import type * as tf from '@tensorflow/tfjs';
import { SPEC_KINDS, type LayerSpec } from '../spec/layers';
import { activation } from './layers/activation';
import { depthwiseConv2d } from './layers/depthwiseConv2d';
import { separableConv2d } from './layers/separableConv2d';
import { zeroPadding2d } from './layers/zeroPadding2d';
import { upSampling2d } from './layers/upSampling2d';
import { layerNormalization } from './layers/layerNormalization';
import { gru } from './layers/gru';
import { lstm } from './layers/lstm';
import { globalMaxPooling2d } from './layers/globalMaxPooling2d';
import { globalMaxPooling1d } from './layers/globalMaxPooling1d';
import { maxPooling1d } from './layers/maxPooling1d';
import { conv1d } from './layers/conv1d';
import { average } from './layers/average';
import { multiply } from './layers/multiply';
import { concatenate } from './layers/concatenate';
import { add } from './layers/add';
import { averagePooling2d } from './layers/averagePooling2d';
import { batchNormalization } from './layers/batchNormalization';
import { conv2d } from './layers/conv2d';
import { dense } from './layers/dense';
import { dropout } from './layers/dropout';
import { embedding } from './layers/embedding';
import { flatten } from './layers/flatten';
import { globalAveragePooling2d } from './layers/globalAveragePooling2d';
import type { LayerKind } from './layers/kind';
import { maxPooling2d } from './layers/maxPooling2d';
import { reshape } from './layers/reshape';

export {
  LayerError,
  checkLayerSpec,
  checkLayerGraph,
  isLayerGraph,
  layerInputsOf,
  layerNameOf,
  LAYER_TYPES,
  ACTIVATIONS,
  MODEL_INPUT_NAME,
  type LayerSpec,
} from '../spec/layers';
export { activate } from './layers/activations';
export { pair, type LayerKind, type ParamRole } from './layers/kind';

const KIND_LIST: readonly LayerKind[] = [
  dense,
  conv2d,
  maxPooling2d,
  averagePooling2d,
  globalAveragePooling2d,
  flatten,
  reshape,
  dropout,
  activation,
  batchNormalization,
  embedding,
  add,
  concatenate,
  multiply,
  average,
  conv1d,
  maxPooling1d,
  globalMaxPooling1d,
  globalMaxPooling2d,
  lstm,
  gru,
  layerNormalization,
  upSampling2d,
  zeroPadding2d,
  depthwiseConv2d,
  separableConv2d,
];

/** Layer kinds by spec name. */
export const KINDS: Readonly<Record<string, LayerKind>> = Object.fromEntries(KIND_LIST.map((k) => [k.spec.type, k]));

/** Layer kinds by tfjs/Keras class name. */
export const KINDS_BY_CLASS: ReadonlyMap<string, LayerKind> = new Map(KIND_LIST.map((k) => [k.spec.className, k]));

export const SUPPORTED_CLASSES = new Set(KINDS_BY_CLASS.keys());

// Both halves register the same kinds: a kind the spec accepts can always be built.
for (const type of Object.keys(SPEC_KINDS))
  if (!KINDS[type] || KINDS[type].spec !== SPEC_KINDS[type])
    throw new Error(`layers: ${type} is registered in spec/layers.ts but not in training/layers.ts`);
for (const type of Object.keys(KINDS))
  if (!SPEC_KINDS[type])
    throw new Error(`layers: ${type} is registered in training/layers.ts but not in spec/layers.ts`);

/** The tf.layers layer for a checked layer spec, zero-initialized, named `name`. */
export function buildLayer(spec: LayerSpec, name: string): tf.layers.Layer {
  const { type, name: _ignored, inputs: _inputs, ...options } = spec;
  void _inputs;
  void _ignored;
  return KINDS[type].build({ ...options, name });
}
