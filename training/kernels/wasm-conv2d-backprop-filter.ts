// Conv2DBackpropFilter for the wasm backend, which tfjs-backend-wasm 4.22 lacks (tfjs #8474): without it
// tf.grad of conv2d w.r.t. the filter throws "Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'".
//
// Built from the wasm backend's own kernels (Transpose, Conv2D on XNNPACK, Slice), no new wasm code:
//
//   forward   y[b, i, j, o]   = sum_{p, q, c} xpad[b, i*sh + p, j*sw + q, c] * W[p, q, c, o]
//   filter grad dW[p, q, c, o] = sum_{b, i, j}  xpad[b, p + i*sh, q + j*sw, c] * dy[b, i, j, o]
//
// Read the second line as a stride-1 conv whose "batch" is the input channel c, whose "channels" are the
// batch b, and whose filter is dy (spatially outH x outW, b in, o out) dilated by the forward stride:
//
//   X' = transpose(x,  [3, 1, 2, 0])   [inC, inH, inW, batch]
//   F' = transpose(dy, [1, 2, 0, 3])   [outH, outW, batch, outC]
//   R  = conv2d(X', F', strides 1, dilations [sh, sw], explicit pad [top, bottom'] x [left, right'])
//                                       [inC, fH', fW', outC]
//   dW = transpose(R[:, :fH, :fW, :], [1, 2, 0, 3])  [fH, fW, inC, outC]
//
// top/left are the forward pass's leading pads. bottom' = fH + (outH - 1) * sh - inH - top is exactly the
// padding the last output row reaches; it equals the forward bottom pad for 'same' and is <= 0 for 'valid'
// when (inH - fH) % sh != 0 (trailing input rows no output reads). A negative value is clamped to 0, which
// makes fH' > fH; the extra rows (reading only unused input) are sliced away. Forward dilations must be 1,
// as the op itself asserts when strides > 1.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type WasmKernelFunc = (args: {
  inputs: tf.NamedTensorInfoMap;
  backend: BackendWasm;
  attrs?: tf.NamedAttrMap;
}) => tf.TensorInfo;

export const WASM_CONV2D_BACKPROP_FILTER = 'Conv2DBackpropFilter';

function wasmKernel(name: string): WasmKernelFunc {
  const config = tf.getKernel(name, 'wasm');
  if (!config) throw new Error(`wasm backend has no ${name} kernel, needed by our Conv2DBackpropFilter`);
  return config.kernelFunc as unknown as WasmKernelFunc;
}

/** The kernel function; exported for tests, registered by registerWasmConv2DBackpropFilter. */
export function conv2DBackpropFilterWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: tf.NamedAttrMap;
}): tf.TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs.x as tf.TensorInfo;
  const dy = inputs.dy as tf.TensorInfo;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;

  const convInfo = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(dataFormat),
  );
  if (convInfo.dataFormat !== 'channelsLast') {
    throw new Error(`wasm Conv2DBackpropFilter supports only NHWC, got ${dataFormat}`);
  }
  const { inHeight, inWidth, outHeight, outWidth, filterHeight, filterWidth, strideHeight, strideWidth, padInfo } =
    convInfo;
  if (!tf.util.arraysEqual(dy.shape, convInfo.outShape)) {
    throw new Error(`wasm Conv2DBackpropFilter: dy shape [${dy.shape}] != forward output [${convInfo.outShape}]`);
  }

  const transpose = wasmKernel('Transpose');
  const conv2d = wasmKernel('Conv2D');
  const temps: tf.TensorInfo[] = [];
  try {
    const xT = transpose({ inputs: { x }, backend, attrs: { perm: [3, 1, 2, 0] } });
    temps.push(xT);
    const dyT = transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } });
    temps.push(dyT);

    const padBottom = Math.max(0, filterHeight + (outHeight - 1) * strideHeight - inHeight - padInfo.top);
    const padRight = Math.max(0, filterWidth + (outWidth - 1) * strideWidth - inWidth - padInfo.left);
    const r = conv2d({
      inputs: { x: xT, filter: dyT },
      backend,
      attrs: {
        strides: [1, 1],
        pad: [
          [0, 0],
          [padInfo.top, padBottom],
          [padInfo.left, padRight],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [strideHeight, strideWidth],
        dimRoundingMode: undefined as unknown as string,
      },
    });
    temps.push(r);

    let cropped = r;
    if (r.shape[1] !== filterHeight || r.shape[2] !== filterWidth) {
      cropped = wasmKernel('Slice')({
        inputs: { x: r },
        backend,
        attrs: { begin: [0, 0, 0, 0], size: [r.shape[0], filterHeight, filterWidth, r.shape[3]] },
      });
      temps.push(cropped);
    }
    return transpose({ inputs: { x: cropped }, backend, attrs: { perm: [1, 2, 0, 3] } });
  } finally {
    // Disposing dyT also frees the XNNPACK operator the Conv2D kernel cached for it as a filter.
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

/**
 * Registers the kernel for 'wasm' unless one exists (ours from an earlier call, or an official one in a
 * later tfjs). Returns whether ours is the registered one.
 */
export function registerWasmConv2DBackpropFilter(): boolean {
  const existing = tf.getKernel(WASM_CONV2D_BACKPROP_FILTER, 'wasm');
  if (existing) return existing.kernelFunc === (conv2DBackpropFilterWasm as unknown as tf.KernelFunc);
  tf.registerKernel({
    kernelName: WASM_CONV2D_BACKPROP_FILTER,
    backendName: 'wasm',
    kernelFunc: conv2DBackpropFilterWasm as unknown as tf.KernelFunc,
  });
  return true;
}
