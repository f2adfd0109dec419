// The recurrent layers' shared parts: their tf.layers config (zero-initialized, Keras's defaults), the per-step gate
// activation, and the input and recurrent dropout masks, drawn once per batch from the run's PRNG (through the
// trainer's mask source) and shared by every time step, as Keras does.
import * as tf from '@tensorflow/tfjs';
import type { AnyCfg, Cfg, ForwardContext } from './kind';
import { matMulOp } from './ops';

export const recurrentConfig = (c: Cfg): AnyCfg => ({
  activation: 'tanh',
  recurrentActivation: 'sigmoid',
  ...c,
  kernelInitializer: 'zeros',
  recurrentInitializer: 'zeros',
  biasInitializer: 'zeros',
});

/** The gates' activation: sigmoid, or tfjs's hardSigmoid (0.2 x + 0.5, clipped to [0, 1]). */
export const gate = (x: tf.Tensor, cfg: Cfg): tf.Tensor =>
  cfg.recurrentActivation === 'hardSigmoid' ? tf.clipByValue(tf.add(tf.mul(x, 0.2), 0.5), 0, 1) : tf.sigmoid(x);

/** A mask for `shape` in training when `rate` > 0, else null. */
export function maskOf(ctx: ForwardContext, shape: number[], rate: unknown): tf.Tensor | null {
  const r = Number(rate ?? 0);
  return ctx.dropoutMask && r > 0 ? ctx.dropoutMask(shape, r) : null;
}

/** The input projection of every step at once: x·kernel + bias, [batch, steps, gates], with the input mask. */
export function projectInputs(
  h: tf.Tensor,
  kernel: tf.Tensor2D,
  bias: tf.Tensor | undefined,
  cfg: Cfg,
  ctx: ForwardContext,
): tf.Tensor[] {
  const [b, steps, features] = h.shape;
  const mask = maskOf(ctx, [b, features], cfg.dropout);
  const x = mask ? tf.mul(h, tf.expandDims(mask, 1)) : h;
  let xw: tf.Tensor = matMulOp(ctx.numerics, ctx.inputGrad)(tf.reshape(x, [b * steps, features]), kernel);
  if (bias) xw = tf.add(xw, bias);
  return tf.unstack(tf.reshape(xw, [b, steps, kernel.shape[1]]), 1);
}

/** The recurrent product h·recurrentKernel (its gradient flows to both). */
export const recur = (ctx: ForwardContext, h: tf.Tensor, w: tf.Tensor) =>
  matMulOp(ctx.numerics, true)(h as tf.Tensor2D, w as tf.Tensor2D);

/** The layer's output: every step's state ([batch, steps, units]) or the last one. */
export const outputOf = (states: tf.Tensor[], cfg: Cfg) =>
  cfg.returnSequences ? tf.stack(states, 1) : states[states.length - 1];
