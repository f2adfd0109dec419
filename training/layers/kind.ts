// What a layer kind's training half declares: how to build its tf.layers layer (zero-initialized: our PRNG
// initializes weights, never tfjs), its forward pass in our training loop (any randomness from our PRNG through the
// trainer's dropout masks), and the roles of its weights (tfjs's variable names: kernel, bias, recurrent_kernel, ...).
import type * as tf from '@tensorflow/tfjs';
import type { LayerKindSpec } from '../../spec/layers';
import type { NumericsVersion } from '../numerics';
import type { Prng } from '../prng';

export type ParamRole =
  | 'kernel'
  | 'bias'
  | 'gamma'
  | 'beta'
  | 'embeddings'
  | 'moving_mean'
  | 'moving_variance'
  | 'recurrent_kernel'
  | 'depthwise_kernel'
  | 'pointwise_kernel';

export type Vars = Partial<Record<ParamRole, tf.Variable>>;

export type Cfg = Record<string, unknown>;

/** Returns a mask tensor of `shape` (inverted dropout: 0 or 1/(1-rate)), or null for no dropout. */
export type DropoutMaskFn = (shape: number[], rate: number) => tf.Tensor | null;

/** Batch-norm moving statistics computed by a training forward pass, assigned by the trainer after the update. */
export type StateUpdates = Array<[tf.Variable, tf.Tensor]>;

export interface ForwardContext {
  numerics: NumericsVersion;
  /** Training: dropout masks from the run's PRNG. Absent in inference. */
  dropoutMask?: DropoutMaskFn;
  /** Training: where batch normalization pushes its new moving statistics. */
  updates?: StateUpdates;
  /** The model's output layer (softmax is then left to the loss). */
  isLast: boolean;
  /** False while the input depends on data only: its gradient is never used, so that work is skipped. */
  inputGrad: boolean;
  /** Training: this layer's output is read by one max pooling layer and nothing else (see ops.ts ReluMask). */
  readByMaxPoolOnly?: boolean;
}

export interface LayerKind {
  /** The tfjs-free half: options, checks, class name. */
  spec: LayerKindSpec;
  /** The tf.layers layer for checked options (plus `name`), zero-initialized. */
  build: (cfg: Cfg) => tf.layers.Layer;
  /** The layer's output from its inputs (one, or several for a merge layer), its variables and its config. */
  forward: (inputs: tf.Tensor[], v: Vars, cfg: Cfg, ctx: ForwardContext) => tf.Tensor;
  /** The roles of its weights, by the last part of tfjs's variable name. */
  roles: readonly ParamRole[];
  /** Initial values of a weight other than the defaults of Net.initialize (e.g. LSTM's forget-gate bias). */
  initialize?: (role: ParamRole, shape: number[], rng: Prng) => Float32Array | null;
}

// tf.layers' option types are precise per layer; the spec's options were checked by the kind's rules.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCfg = any;

export const ZERO_INIT = { kernelInitializer: 'zeros', biasInitializer: 'zeros' } as const;

export function pair(v: unknown): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2) return [Number(v[0]), Number(v[1])];
  throw new Error(`layers: unexpected size ${JSON.stringify(v)}`);
}
