// MaxPoolGrad for the wasm backend when the pooling windows tile the input (window = stride, no padding, no
// dilation: the mnist-cnn's 2x2 pools), computed in JavaScript straight on the wasm heap with the same result
// bit for bit as tfjs-backend-wasm 4.22's own kernel, which takes about a fifth of an mnist-cnn step.
//
// What that kernel computes (src/cc/kernels/MaxPoolGrad.cc and pool3d_impl.h in tfjs 4.22):
//   - for each output y, the position of its window's maximum: scanning the window row by row, a value
//     `>=` the best so far takes over (the last of equal maxima wins), starting from {FLT_MIN, offset 0};
//     so a window whose values are all below FLT_MIN (all zeros after a relu) keeps position 0, the
//     tensor's first element, and NaN never wins;
//   - for each input x, dx = 0 + sum over the windows covering x of dy * (x == position ? 1 : 0), in float32.
// With non-overlapping windows each x is covered by at most one window, so dx is 0 + dy (x is its window's
// position), 0 + dy * 0 (it is not: +0, or NaN when dy is not finite) or 0 (no window covers it: the rows and
// columns a 'valid' pool leaves out). Every value is exact in float64 and stored back as the same float32.
// Other configurations go to the backend's kernel.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** The smallest normal float32 (C++'s std::numeric_limits<float>::min()). */
const FLT_MIN = 1.1754943508222875e-38;

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap };

let original: tf.KernelConfig | undefined;

/** The kernel function; exported for tests, registered by registerWasmMaxPoolGrad. */
export function maxPoolGradWasm(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend, attrs } = args;
  const dy = inputs.dy as tf.TensorInfo;
  const input = inputs.input as tf.TensorInfo;
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as tf.MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const tiles =
    input.dtype === 'float32' &&
    dy.dtype === 'float32' &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    info.padInfo.top === 0 &&
    info.padInfo.left === 0 &&
    info.filterHeight === info.strideHeight &&
    info.filterWidth === info.strideWidth &&
    info.outHeight * info.strideHeight <= info.inHeight &&
    info.outWidth * info.strideWidth <= info.inWidth &&
    tf.util.arraysEqual(dy.shape, info.outShape);
  if (!tiles) {
    if (!original) throw new Error('wasm MaxPoolGrad: the backend kernel is missing');
    return original.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }

  const out = backend.makeOutput(input.shape, 'float32');
  // Views after makeOutput: allocating may grow (and so move) the wasm heap.
  const x = backend.typedArrayFromHeap(input) as Float32Array;
  const g = backend.typedArrayFromHeap(dy) as Float32Array;
  const dx = backend.typedArrayFromHeap(out) as Float32Array;

  const { batchSize, inHeight, inWidth, inChannels: C, outHeight, outWidth, strideHeight: sh, strideWidth: sw } = info;
  const rowStride = inWidth * C;
  if (sh === 2 && sw === 2) {
    // Every element of a window is written, so only rows and columns that no window covers need the zero fill.
    if (outHeight * 2 < inHeight || outWidth * 2 < inWidth) dx.fill(0);
    pool2x2Grad(x, g, dx, batchSize, inHeight, rowStride, C, outHeight, outWidth);
    return out;
  }
  dx.fill(0);
  for (let b = 0; b < batchSize; b++) {
    const xBatch = b * inHeight * rowStride;
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        const corner = xBatch + oh * sh * rowStride + ow * sw * C;
        const yBase = ((b * outHeight + oh) * outWidth + ow) * C;
        for (let c = 0; c < C; c++) {
          let best = FLT_MIN;
          let pos = 0;
          for (let r = 0; r < sh; r++) {
            for (let q = 0; q < sw; q++) {
              const off = corner + r * rowStride + q * C + c;
              const v = x[off];
              if (v >= best) {
                best = v;
                pos = off;
              }
            }
          }
          const gy = g[yBase + c];
          const masked = 0 + gy * 0;
          for (let r = 0; r < sh; r++) {
            for (let q = 0; q < sw; q++) {
              const off = corner + r * rowStride + q * C + c;
              dx[off] = off === pos ? 0 + gy : masked;
            }
          }
        }
      }
    }
  }
  return out;
}

/**
 * The same computation for 2x2 windows (the mnist-cnn's pools), 4x faster (2.3 against 9.8 ms for its first pool at
 * batch 64): the four values of a window read per channel from four contiguous rows of channels, the window scan
 * unrolled in the same order (r0 q0, r0 q1, r1 q0, r1 q1) with the same `>=` from FLT_MIN, and the start position 0
 * (the tensor's first element) kept for a window with no value >= FLT_MIN, which receives the gradient only if that
 * element is in it.
 */
function pool2x2Grad(
  x: Float32Array,
  g: Float32Array,
  dx: Float32Array,
  batchSize: number,
  inHeight: number,
  rowStride: number,
  C: number,
  outHeight: number,
  outWidth: number,
): void {
  for (let b = 0; b < batchSize; b++) {
    const xBatch = b * inHeight * rowStride;
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        const o00 = xBatch + 2 * oh * rowStride + 2 * ow * C;
        const o01 = o00 + C;
        const o10 = o00 + rowStride;
        const o11 = o10 + C;
        const yBase = ((b * outHeight + oh) * outWidth + ow) * C;
        for (let c = 0; c < C; c++) {
          const v00 = x[o00 + c];
          const v01 = x[o01 + c];
          const v10 = x[o10 + c];
          const v11 = x[o11 + c];
          let best = FLT_MIN;
          let k = -1;
          if (v00 >= best) {
            best = v00;
            k = 0;
          }
          if (v01 >= best) {
            best = v01;
            k = 1;
          }
          if (v10 >= best) {
            best = v10;
            k = 2;
          }
          if (v11 >= best) k = 3;
          if (k < 0 && o00 + c === 0) k = 0;
          const gy = g[yBase + c];
          const hit = 0 + gy;
          const masked = 0 + gy * 0;
          dx[o00 + c] = k === 0 ? hit : masked;
          dx[o01 + c] = k === 1 ? hit : masked;
          dx[o10 + c] = k === 2 ? hit : masked;
          dx[o11 + c] = k === 3 ? hit : masked;
        }
      }
    }
  }
}

/** The backend's own MaxPoolGrad, which ours replaces (for tests comparing the two); after registration only. */
export function backendMaxPoolGradWasm(args: KernelArgs): tf.TensorInfo {
  if (!original) throw new Error('wasm MaxPoolGrad: ours is not registered');
  return original.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

/** Puts ours in front of the backend's MaxPoolGrad (kept for the configurations ours does not cover). */
export function registerWasmMaxPoolGrad(): void {
  const existing = tf.getKernel('MaxPoolGrad', 'wasm');
  if (!existing || existing.kernelFunc === (maxPoolGradWasm as unknown as tf.KernelFunc)) return;
  original = existing;
  tf.unregisterKernel('MaxPoolGrad', 'wasm');
  tf.registerKernel({
    kernelName: 'MaxPoolGrad',
    backendName: 'wasm',
    kernelFunc: maxPoolGradWasm as unknown as tf.KernelFunc,
  });
}
