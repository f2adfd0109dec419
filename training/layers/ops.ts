// Convolution and matMul with gradients from ops every backend has (numerics 1), or from the backend's own gradient
// kernels (numerics 2); shared by the layer kinds that convolve or multiply by a kernel.
import * as tf from '@tensorflow/tfjs';
import { mklFusedConv2D, reluGrad } from '../kernels/tensorflow';
import type { NumericsVersion } from '../numerics';

// Conv gradients as forward convolutions. The wasm backend has no Conv2DBackpropFilter kernel
// (tfjs #8474) and its Conv2DBackpropInput is slow, while Conv2D (XNNPACK) is fast everywhere.
// Using the same ops on every backend also keeps numerics independent of which kernels happen to be
// registered in a process.

/** Gradient of a stride-1 'valid' conv2d with respect to its [kh, kw, ci, co] filter. */
export function conv2dFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    // Correlate each input channel (as a batch) with dy (batch as channels): [ci, kh, kw, co].
    const g = tf.conv2d(tf.transpose(x, [3, 1, 2, 0]), tf.transpose(dy, [1, 2, 0, 3]), 1, 'valid');
    return tf.transpose(g, [1, 2, 0, 3]);
  });
}

/** Gradient of a stride-1 'valid' conv2d with respect to its input: a full convolution of dy. */
export function conv2dInputGrad(dy: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw] = w.shape;
    const padded = tf.pad(dy, [
      [0, 0],
      [kh - 1, kh - 1],
      [kw - 1, kw - 1],
      [0, 0],
    ]);
    return tf.conv2d(padded, tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]), 1, 'valid');
  });
}

/**
 * y = value(x, w) with its gradients from `dx` and `dw`, as one tape op. `inputGrad` false: the first layer's input is
 * data, its gradient is never used, so that work is skipped (zeros). dx is computed before dw, as the math requires
 * for the same float32 results on every run.
 */
function withGrads<T extends tf.Tensor>(
  value: (x: T, w: T) => T,
  dx: (dy: T, x: T, w: T) => T,
  dw: (dy: T, x: T, w: T) => T,
  inputGrad: boolean,
): (x: T, w: T) => T {
  const op = tf.customGrad(((x: T, w: T, save: tf.GradSaveFunc) => {
    save([x, w]);
    return {
      value: value(x, w),
      gradFunc: (dy: T, saved: tf.Tensor[]) => {
        const [sx, sw] = saved as [T, T];
        const gx = inputGrad ? dx(dy, sx, sw) : (tf.zerosLike(sx) as T);
        return [gx, dw(dy, sx, sw)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<T>>[0]);
  return (x, w) => op(x, w);
}

const conv = (x: tf.Tensor4D, w: tf.Tensor4D) => tf.conv2d(x, w, 1, 'valid');
const convPortable = (inputGrad: boolean) =>
  withGrads<tf.Tensor4D>(
    conv,
    (dy, _x, w) => conv2dInputGrad(dy, w),
    (dy, x) => conv2dFilterGrad(x, dy),
    inputGrad,
  );
const convWithInputGrad = convPortable(true);
const convWithoutInputGrad = convPortable(false);

// Numerics 2: the backend's own conv-gradient kernels (oneDNN's on the tensorflow backend: fewer, faster ops than
// the forward-convolution form above, with different float32 rounding).
const VALID_1 = { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dimRoundingMode: undefined } as const;
const nativeConvInputGrad = (dy: tf.Tensor4D, x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D =>
  tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, {
    ...VALID_1,
    inputShape: x.shape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
const nativeConvFilterGrad = (dy: tf.Tensor4D, x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D =>
  tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
    ...VALID_1,
    filterShape: w.shape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
const convNative = (inputGrad: boolean) =>
  withGrads<tf.Tensor4D>(conv, nativeConvInputGrad, nativeConvFilterGrad, inputGrad);
const nativeConvWithInputGrad = convNative(true);
const nativeConvWithoutInputGrad = convNative(false);

/** The gradients of conv+bias(+relu) given its output's gradient dy: [dx when `inputGrad`, dw, db]. */
function convBiasActGrads(
  dy: tf.Tensor4D,
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  y: tf.Tensor4D,
  relu: boolean,
  inputGrad: boolean,
  mask?: ReluMask,
): tf.Tensor[] {
  const dz = relu && !mask?.appliedByReader ? reluGrad(dy, y) : dy;
  const gx = inputGrad ? [nativeConvInputGrad(dz, x, w)] : [];
  const gw = nativeConvFilterGrad(dz, x, w);
  const gb = tf.reshape(tf.sum(dz, [0, 1, 2]), [dz.shape[3]]);
  return [...gx, gw, gb];
}

type ConvBiasAct = (x: tf.Tensor4D, w: tf.Tensor4D, bias: tf.Tensor1D) => tf.Tensor4D;

// Numerics 2 on tensorflow: conv, bias and relu (or no activation) as one oneDNN kernel, the same bits as the three ops
// (kernels/tensorflow.ts). Its gradient is theirs: TensorFlow's ReluGrad (given the relu's output, which is positive
// exactly where its input is), the bias gradient as tfjs's Add gradient computes it (the sum over every axis but the
// last), and the conv gradients of convNative from that. With `mask` (a relu whose only reader is a max pooling, see
// ReluMask) the pooling's gradient may have applied the relu's mask already; then it is not applied again.
const convBiasActNative = (inputGrad: boolean, relu: boolean, mask?: ReluMask): ConvBiasAct => {
  if (!inputGrad) {
    // The input is data (its gradient is never used): an op of the weights alone, x read from the enclosing scope
    // (alive until the step's gradients are taken), so no zeros are made for x's gradient.
    return (x, w, bias) =>
      tf.customGrad(((kernel: tf.Tensor4D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
        const y = mklFusedConv2D(x, kernel, b, relu);
        save([kernel, y]);
        return {
          value: y,
          gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
            const [sw, sy] = saved as [tf.Tensor4D, tf.Tensor4D];
            return convBiasActGrads(dy, x, sw, sy, relu, false, mask);
          },
        };
      }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor4D>>[0])(w, bias);
  }
  const op = tf.customGrad(((x: tf.Tensor4D, w: tf.Tensor4D, bias: tf.Tensor1D, save: tf.GradSaveFunc) => {
    const y = mklFusedConv2D(x, w, bias, relu);
    save([x, w, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sw, sy] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        return convBiasActGrads(dy, sx, sw, sy, relu, true, mask);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor4D>>[0]) as unknown as ConvBiasAct;
  return op;
};
const fusedConvOps = {
  relu: [convBiasActNative(false, true), convBiasActNative(true, true)],
  linear: [convBiasActNative(false, false), convBiasActNative(true, false)],
};

/**
 * A fused conv+relu's output whose only reader is a max pooling layer (numerics 2, tensorflow). The relu's gradient is
 * dy where the output is positive and (signed) zero elsewhere; the pooling's gradient puts each window's gradient on
 * the window's maximum, so the relu's mask can be applied to the pooled gradient (a quarter of the size for 2x2
 * windows) against the pooled values (each the relu output at its maximum) instead: the same values, zeros aside
 * (oneDNN adds into zeros, so a -0 becomes +0, which no optimizer's update can tell apart). The pooling layer that
 * does it sets `appliedByReader` at its forward pass; the conv's gradient then skips its own ReluGrad.
 */
export interface ReluMask {
  appliedByReader: boolean;
}

/** Fused conv+relu outputs read only by a max pooling layer, each with the mask handed over (see ReluMask). */
export const reluMasks = new WeakMap<tf.Tensor, ReluMask>();

// x·w with gradients from explicit transposes: wasm's transposed matMuls are several times slower.
const matMul = (x: tf.Tensor2D, w: tf.Tensor2D) => tf.matMul(x, w) as tf.Tensor2D;
const matMulPortable = (inputGrad: boolean) =>
  withGrads<tf.Tensor2D>(
    matMul,
    (dy, _x, w) => tf.matMul(dy, tf.transpose(w)),
    (dy, x) => tf.matMul(tf.transpose(x), dy),
    inputGrad,
  );
const matMulWithInputGrad = matMulPortable(true);
const matMulWithoutInputGrad = matMulPortable(false);

// Numerics 2: transposed matMuls (BatchMatMul's adjoint flags on the tensorflow backend), no separate transposes.
const matMulNative = (inputGrad: boolean) =>
  withGrads<tf.Tensor2D>(
    matMul,
    (dy, _x, w) => tf.matMul(dy, w, false, true),
    (dy, x) => tf.matMul(x, dy, true, false),
    inputGrad,
  );
const nativeMatMulWithInputGrad = matMulNative(true);
const nativeMatMulWithoutInputGrad = matMulNative(false);

/** The stride-1 'valid' conv2d of a numerics version, with (`inputGrad`) or without its input's gradient. */
export function validConv(
  numerics: NumericsVersion,
  inputGrad: boolean,
): (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D {
  return numerics === 2
    ? inputGrad
      ? nativeConvWithInputGrad
      : nativeConvWithoutInputGrad
    : inputGrad
      ? convWithInputGrad
      : convWithoutInputGrad;
}

/**
 * Numerics 2 on tensorflow: conv, bias and relu (or linear) as one oneDNN kernel. `readByMaxPoolOnly` (relu): the
 * output is registered in reluMasks, for the max pooling that reads it to take over the relu's gradient mask.
 */
export function fusedConv(act: 'relu' | 'linear', inputGrad: boolean, readByMaxPoolOnly = false): ConvBiasAct {
  if (act !== 'relu' || !readByMaxPoolOnly) return fusedConvOps[act][inputGrad ? 1 : 0];
  const mask: ReluMask = { appliedByReader: false };
  const op = convBiasActNative(inputGrad, true, mask);
  return (x, w, bias) => {
    const y = op(x, w, bias);
    reluMasks.set(y, mask);
    return y;
  };
}

/** x·w of a numerics version, with (`inputGrad`) or without its input's gradient. */
export function matMulOp(
  numerics: NumericsVersion,
  inputGrad: boolean,
): (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D {
  return numerics === 2
    ? inputGrad
      ? nativeMatMulWithInputGrad
      : nativeMatMulWithoutInputGrad
    : inputGrad
      ? matMulWithInputGrad
      : matMulWithoutInputGrad;
}

// Depthwise convolution (depthwiseConv2d, separableConv2d). The wasm backend has DepthwiseConv2dNative (XNNPACK) but
// neither of its gradient kernels, so numerics 1 computes both gradients as forward depthwise convolutions (the same
// ops on every backend), as conv2dFilterGrad and conv2dInputGrad do for conv2d. `x` is already padded ('valid'), the
// filter is [kh, kw, c, m] and output channel c*m + k reads input channel c with filter [:, :, c, k]:
//
//   y[b, i, j, c*m + k]  = sum_{p, q} x[b, i*sh + p, j*sw + q, c] * w[p, q, c, k]
//   dW[p, q, c, k]       = sum_{b, u, v} x[b, p + u, q + v, c] * dyz[b, u, v, c*m + k]
//   dx[b, u, v, c]       = sum_{p, q, k} dyz[b, u - p, v - q, c*m + k] * w[p, q, c, k]
//
// where dyz is dy with s - 1 zeros between its rows (columns) for a stride s: dyz[b, i*sh, j*sw] = dy[b, i, j].
//
// dW is a depthwise convolution over one image whose channels are (batch, channel) pairs, with dyz as its filter;
// dx is a full depthwise correlation of dyz with the flipped filter, summed over the multiplier k.

/** dy [b, oh, ow, n] with s - 1 zero rows (and columns) between its rows (columns): [b, (oh-1)*sh+1, (ow-1)*sw+1, n]. */
function insertZeros(dy: tf.Tensor4D, [sh, sw]: [number, number]): tf.Tensor4D {
  const [b, oh, ow, n] = dy.shape;
  let r: tf.Tensor4D = dy;
  if (sh > 1) {
    const rows = tf.pad(tf.reshape(r, [b, oh, 1, ow * n]), [
      [0, 0],
      [0, 0],
      [0, sh - 1],
      [0, 0],
    ]);
    r = tf.slice(tf.reshape<tf.Rank.R4>(rows, [b, oh * sh, ow, n]), 0, [b, (oh - 1) * sh + 1, ow, n]);
  }
  if (sw > 1) {
    const h = r.shape[1];
    const cols = tf.pad(tf.reshape(r, [b * h, ow, 1, n]), [
      [0, 0],
      [0, 0],
      [0, sw - 1],
      [0, 0],
    ]);
    r = tf.slice(tf.reshape<tf.Rank.R4>(cols, [b, h, ow * sw, n]), 0, [b, h, (ow - 1) * sw + 1, n]);
  }
  return r;
}

/** Gradient of a 'valid' depthwise conv2d with respect to its [kh, kw, c, m] filter. */
export function depthwiseFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: number[],
  strides: [number, number],
): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, , , c] = x.shape;
    const [kh, kw, , m] = filterShape;
    const [, oh, ow] = dy.shape;
    const [hu, wu] = [(oh - 1) * strides[0] + kh, (ow - 1) * strides[1] + kw];
    // The input rows and columns some output reads; the image's channels are (batch, channel) pairs.
    const xs = tf.slice(x, 0, [b, hu, wu, c]);
    const image = tf.reshape<tf.Rank.R4>(tf.transpose(xs, [1, 2, 0, 3]), [1, hu, wu, b * c]);
    // dy with zeros between its rows and columns rather than a dilated filter: TensorFlow's kernel has no dilation.
    const dyz = insertZeros(dy, strides);
    const [, fh, fw] = dyz.shape;
    const filter = tf.reshape<tf.Rank.R4>(tf.transpose(dyz, [1, 2, 0, 3]), [fh, fw, b * c, m]);
    const g = tf.depthwiseConv2d(image, filter, 1, 'valid');
    // [1, kh, kw, (b, c, k)] summed over the batch.
    return tf.reshape<tf.Rank.R4>(tf.sum(tf.reshape(g, [kh * kw, b, c * m]), 1), [kh, kw, c, m]);
  });
}

/** Gradient of a 'valid' depthwise conv2d with respect to its input x. */
export function depthwiseInputGrad(
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  inputShape: number[],
  strides: [number, number],
): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw, c, m] = w.shape;
    const [b, h, wd] = inputShape;
    const dyz = insertZeros(dy, strides);
    const padded = tf.pad(dyz, [
      [0, 0],
      [kh - 1, kh - 1],
      [kw - 1, kw - 1],
      [0, 0],
    ]);
    const flipped = tf.reshape<tf.Rank.R4>(tf.reverse(w, [0, 1]), [kh, kw, c * m, 1]);
    const g = tf.depthwiseConv2d(padded, flipped, 1, 'valid');
    const [, hu, wu] = g.shape;
    const dx = tf.reshape<tf.Rank.R4>(tf.sum(tf.reshape(g, [b * hu * wu * c, m]), 1), [b, hu, wu, c]);
    // Trailing rows and columns no output reads get no gradient.
    return hu === h && wu === wd
      ? dx
      : tf.pad(dx, [
          [0, 0],
          [0, h - hu],
          [0, wd - wu],
          [0, 0],
        ]);
  });
}

/** The padding TensorFlow's 'same' adds before and after an axis of `size` for a kernel `k` and stride `s`. */
function samePads(size: number, k: number, s: number): [number, number] {
  const total = Math.max((Math.ceil(size / s) - 1) * s + k - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

const depthwisePortable = (strides: [number, number], inputGrad: boolean) =>
  withGrads<tf.Tensor4D>(
    (x, w) => tf.depthwiseConv2d(x, w, strides, 'valid'),
    (dy, x, w) => depthwiseInputGrad(dy, w, x.shape, strides),
    (dy, x, w) => depthwiseFilterGrad(x, dy, w.shape, strides),
    inputGrad,
  );

// Numerics 2: the backend's own DepthwiseConv2dNativeBackpropInput/Filter (TensorFlow's on the tensorflow backend).
const depthwiseNative = (strides: [number, number], pad: 'valid' | 'same', inputGrad: boolean) => {
  const attrs = { strides, pad, dilations: [1, 1], dimRoundingMode: undefined };
  return withGrads<tf.Tensor4D>(
    (x, w) => tf.depthwiseConv2d(x, w, strides, pad),
    (dy, x, w) =>
      tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, {
        ...attrs,
        inputShape: x.shape,
      } as unknown as tf.NamedAttrMap) as tf.Tensor4D,
    (dy, x, w) =>
      tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, {
        ...attrs,
        filterShape: w.shape,
      } as unknown as tf.NamedAttrMap) as tf.Tensor4D,
    inputGrad,
  );
};

/**
 * The depthwise conv2d of a numerics version (undilated), with (`inputGrad`) or without its input's gradient.
 * Numerics 1 pads 'same' explicitly (TensorFlow's split: the extra one after) and convolves 'valid'.
 */
export function depthwiseConv(
  numerics: NumericsVersion,
  inputGrad: boolean,
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  strides: [number, number],
  padding: 'valid' | 'same',
): tf.Tensor4D {
  if (numerics === 2) return depthwiseNative(strides, padding, inputGrad)(x, w);
  let h = x;
  if (padding === 'same') {
    const [top, bottom] = samePads(x.shape[1], w.shape[0], strides[0]);
    const [left, right] = samePads(x.shape[2], w.shape[1], strides[1]);
    if (top + bottom + left + right > 0)
      h = tf.pad(x, [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ]);
  }
  return depthwisePortable(strides, inputGrad)(h, w);
}
