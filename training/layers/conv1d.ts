import * as tf from '@tensorflow/tfjs';
import { conv1d as spec } from '../../spec/layers/conv1d';
import { activate } from './activations';
import { ZERO_INIT, type AnyCfg, type LayerKind } from './kind';
import { validConv } from './ops';

const first = (v: unknown): number => Number(Array.isArray(v) ? v[0] : (v ?? 1));

/** A [k, ci, co] kernel dilated by `d`: d - 1 zero taps between its taps (pad, reshape, slice: gradients everywhere). */
function dilate(kernel: tf.Tensor3D, d: number): tf.Tensor3D {
  if (d === 1) return kernel;
  const [k, ci, co] = kernel.shape;
  const spread = tf.reshape(
    tf.pad(tf.reshape(kernel, [k, 1, ci, co]), [
      [0, 0],
      [0, d - 1],
      [0, 0],
      [0, 0],
    ]),
    [k * d, ci, co],
  );
  return tf.slice(spread, [0, 0, 0], [(k - 1) * d + 1, ci, co]) as tf.Tensor3D;
}

/** Zeros before and after the sequence as TensorFlow pads them for 'same': split, the extra one after. */
function padOf(padding: unknown, len: number, span: number, stride: number): [number, number] {
  if (padding !== 'same') return [0, 0];
  const total = Math.max((Math.ceil(len / stride) - 1) * stride + span - len, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** Steps 0, n, 2n, ... of a [b, len, c] sequence (pad, reshape, slice: gradients on every backend). */
function everyNth(y: tf.Tensor3D, n: number): tf.Tensor3D {
  const [b, len, c] = y.shape;
  const m = Math.ceil(len / n);
  const padded = tf.pad(y, [
    [0, 0],
    [0, m * n - len],
    [0, 0],
  ]);
  return tf.reshape(tf.slice(tf.reshape(padded, [b, m, n, c]), [0, 0, 0, 0], [b, m, 1, c]), [b, m, c]);
}

export const conv1d: LayerKind = {
  spec,
  build: (c) => tf.layers.conv1d({ ...(c as AnyCfg), ...ZERO_INIT }),
  roles: ['kernel', 'bias'],
  // As conv2d's stride-1 'valid' convolution over a [1, length] image (whose gradients every backend computes, wasm
  // included): padding as explicit zeros, a dilated kernel as one with zero taps, strides as every stride-th output.
  forward: ([h], v, cfg, ctx) => {
    const d = first(cfg.dilationRate);
    const stride = first(cfg.strides);
    const kernel = dilate(v.kernel as tf.Tensor3D, d);
    const [span, ci, co] = kernel.shape;
    let x = h as tf.Tensor3D;
    const [before, after] = padOf(cfg.padding, x.shape[1], span, stride);
    if (before || after)
      x = tf.pad(x, [
        [0, 0],
        [before, after],
        [0, 0],
      ]);
    const [b, len] = x.shape;
    const y4 = validConv(ctx.numerics, ctx.inputGrad)(
      tf.reshape(x, [b, 1, len, ci]),
      tf.reshape(kernel, [1, span, ci, co]),
    );
    let y = tf.reshape(y4, [b, len - span + 1, co]) as tf.Tensor3D;
    if (stride > 1) y = everyNth(y, stride);
    return activate(v.bias ? tf.add(y, v.bias) : y, cfg.activation, ctx.isLast, ctx.numerics === 2);
  },
};
