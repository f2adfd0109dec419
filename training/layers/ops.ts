// Convolution and matMul with gradients from ops every backend has (numerics 1), or from the backend's own gradient
// kernels (numerics 2); shared by the layer kinds that convolve or multiply by a kernel.
import * as tf from '@tensorflow/tfjs';
import { mklFusedConv2D, TF_RELU_GRAD } from '../kernels/tensorflow';
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

// Numerics 2 on tensorflow: conv, bias and relu (or no activation) as one oneDNN kernel, the same bits as the three ops
// (kernels/tensorflow.ts). Its gradient is theirs: TensorFlow's ReluGrad (given the relu's output, which is positive
// exactly where its input is), the bias gradient as tfjs's Add gradient computes it (the sum over every axis but the
// last), and the conv gradients of convNative from that.
const convBiasActNative = (inputGrad: boolean, relu: boolean) =>
  tf.customGrad(((x: tf.Tensor4D, w: tf.Tensor4D, bias: tf.Tensor1D, save: tf.GradSaveFunc) => {
    const y = mklFusedConv2D(x, w, bias, relu);
    save([x, w, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sw, sy] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        const dz = relu ? (tf.engine().runKernel(TF_RELU_GRAD, { dy, x: sy }) as tf.Tensor4D) : dy;
        const gx = inputGrad ? nativeConvInputGrad(dz, sx, sw) : tf.zerosLike(sx);
        const gw = nativeConvFilterGrad(dz, sx, sw);
        const gb = tf.reshape(tf.sum(dz, [0, 1, 2]), [dz.shape[3]]);
        return [gx, gw, gb];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor4D>>[0]) as unknown as (
    x: tf.Tensor4D,
    w: tf.Tensor4D,
    bias: tf.Tensor1D,
  ) => tf.Tensor4D;
const fusedConvOps = {
  relu: [convBiasActNative(false, true), convBiasActNative(true, true)],
  linear: [convBiasActNative(false, false), convBiasActNative(true, false)],
};

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

/** Numerics 2 on tensorflow: conv, bias and relu (or linear) as one oneDNN kernel. */
export function fusedConv(
  act: 'relu' | 'linear',
  inputGrad: boolean,
): (x: tf.Tensor4D, w: tf.Tensor4D, bias: tf.Tensor1D) => tf.Tensor4D {
  return fusedConvOps[act][inputGrad ? 1 : 0];
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
