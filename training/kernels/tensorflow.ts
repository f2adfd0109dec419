// Kernels for the tensorflow backend (tfjs-node) that give the same results with less work.
//
// Step, with no host-side arrays.
// tfjs's relu gradient is dy * step(x). tfjs-node 4.22's Step builds `ones(x.shape)` in JavaScript and uploads
// it to TensorFlow on every call (5.5 MB for the mnist-cnn's first conv output at batch 64), then runs Fill and
// two Selects over the whole tensor: about a tenth of a training step. This one computes the same values with
// TensorFlow ops only: Greater and Cast give exactly 1 where x > 0 and +0 elsewhere (as `where(x > 0, ones,
// fill(0))` does), and the last Select keeps NaN inputs as they were (as tfjs-node's does). Bitwise the same
// output for every float32 input, so checkpoints written before it resume with the same math; any other dtype
// or a nonzero alpha goes to tfjs-node's own kernel.
//
// Cast to the tensor's own dtype, without a copy. The relu gradient then casts step(x) to float32, which it
// already is: tfjs-node runs a TensorFlow Cast (a full copy) for it; the cpu and wasm backends return the same
// data with one more reference, and so does this one now. Other casts go to tfjs-node's kernel.
//
// ReluGrad (numerics 2 only): TensorFlow's own relu gradient op, dy * (x > 0) in one kernel, where tfjs's relu
// gradient runs Step (four ops here) and a Multiply. Registered under a name of ours (tfjs has no such kernel) and
// called by the numerics-2 relu in training/layers.ts. It differs from tfjs's for NaN inputs (0 where tfjs gives NaN),
// so it is part of numerics 2, never used for version 1.
import * as tf from '@tensorflow/tfjs';
import { firstDifferingByte } from '../compare';
import { ShapeChecks, type ShapeCheckStats } from './shape-checks';

export const TF_RELU_GRAD = 'DurableTrainReluGrad';

/** TensorFlow's ReluGrad (numerics 2): dy where x > 0, else a zero; through tfjs's engine, so it is on the tape. */
export function reluGrad<T extends tf.Tensor>(dy: T, x: T): T {
  return tf.engine().runKernel(TF_RELU_GRAD, { dy, x }) as T;
}

interface OutputMetadata {
  id: number;
  shape: number[];
  dtype: number;
}

interface TfjsNodeBackend {
  binding: {
    TF_ATTR_TYPE: number;
    TF_ATTR_INT: number;
    TF_ATTR_STRING: number;
    TF_ATTR_BOOL: number;
    TF_ATTR_FLOAT: number;
    TF_FLOAT: number;
    TF_INT32: number;
    executeOp(name: string, attrs: unknown[], inputIds: number[], outputs: number): OutputMetadata[];
    createTensor(shape: number[], dtype: number, values: Float32Array | Int32Array): number;
    /** From setup:native's patch (scripts/tfjs-binding-patch.js); absent from a binding built before it. */
    tensorDataInto?(id: number, into: Float32Array): void;
    deleteTensor(id: number): void;
  };
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.TensorInfo[]): tf.TensorInfo;
  getInputTensorIds(tensors: tf.TensorInfo[]): number[];
  createOutputTensor(meta: OutputMetadata): tf.Tensor;
  getDTypeInteger(dtype: tf.DataType): number;
  createReductionOpAttrs(x: tf.TensorInfo, keepDims: boolean): unknown[];
}

// Reshape and Sum without a new shape tensor per call. tfjs-node's kernels make the target shape (Reshape) or the axes
// (Sum) an int32 tensor on every call: a tfjs tensor, an upload to TensorFlow and a delete, about as much JavaScript and
// N-API work as the op itself for the small reshapes and bias sums of a training step (17 a step for the mnist-cnn).
// These keep one TensorFlow int32 tensor per distinct shape or axes list (at most CONSTANTS_MAX, then per call as
// before) and run the same TensorFlow op on it: the same outputs, bit for bit.
const CONSTANTS_MAX = 512;
const int32Constants = new Map<string, number>();

function int32Constant(b: TfjsNodeBackend, values: number[]): { id: number; temporary: boolean } {
  const key = values.join(',');
  const known = int32Constants.get(key);
  if (known !== undefined) return { id: known, temporary: false };
  const id = b.binding.createTensor([values.length], b.binding.TF_INT32, Int32Array.from(values));
  if (int32Constants.size >= CONSTANTS_MAX) return { id, temporary: true };
  int32Constants.set(key, id);
  return { id, temporary: false };
}

function withInt32Constant(
  b: TfjsNodeBackend,
  op: string,
  attrs: unknown[],
  x: tf.TensorInfo,
  values: number[],
): tf.TensorInfo {
  const c = int32Constant(b, values);
  try {
    const [out] = b.binding.executeOp(op, attrs, [...b.getInputTensorIds([x]), c.id], 1);
    return b.createOutputTensor(out);
  } finally {
    if (c.temporary) b.binding.deleteTensor(c.id);
  }
}

// Max pooling by oneDNN (numerics 2 only). TensorFlow's eager MaxPoolGrad is a generic loop that searches every
// window again: 7.2 ms for the mnist-cnn's first pool at batch 64, about a sixth of a step. Eager execution does not
// rewrite pooling to oneDNN as TensorFlow's graphs do, but the oneDNN kernels are registered under their own names
// (_MklNativeMaxPool, _MklNativeMaxPoolGrad, label MklNameChangeOp): the forward pass also returns a workspace (the
// argmax, as uint8 bytes) and the gradient only scatters through it, 0.5 ms each. For windows that tile the input
// (the mnist-cnn's) their gradient equals MaxPoolGrad's bit for bit (the same first maximum of each window, ties
// included; tested); overlapping windows add up in another order. The pooled values are the same except in a window
// whose maximum is a denormal, which oneDNN keeps and TensorFlow's MaxPool reads as zero. Hence numerics 2 only. The workspace is a TensorFlow uint8 tensor that tfjs labels int32;
// it is only ever handed back to TensorFlow, and kept out of tfjs's tape (whose saved-tensor copy would mislabel
// it). Absent where TensorFlow runs without oneDNN (TF_ENABLE_ONEDNN_OPTS=0), probed once: then tf.maxPool is used.
let mklPooling: boolean | undefined;

function mklPoolAttrs(b: TfjsNodeBackend, ksize: [number, number], strides: [number, number]) {
  return [
    { name: 'T', type: b.binding.TF_ATTR_TYPE, value: b.binding.TF_FLOAT },
    { name: 'ksize', type: b.binding.TF_ATTR_INT, value: [1, ksize[0], ksize[1], 1] },
    { name: 'strides', type: b.binding.TF_ATTR_INT, value: [1, strides[0], strides[1], 1] },
    { name: 'padding', type: b.binding.TF_ATTR_STRING, value: 'VALID' },
    { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'workspace_enabled', type: b.binding.TF_ATTR_BOOL, value: true },
    { name: '_kernel', type: b.binding.TF_ATTR_STRING, value: 'MklNameChangeOp' },
  ];
}

/** Whether oneDNN's max pooling kernels can be run here (tensorflow backend with oneDNN); probed once. */
export function hasMklPooling(): boolean {
  if (tf.getBackend() !== 'tensorflow') return false;
  if (mklPooling === undefined) {
    const b = tf.backend() as unknown as TfjsNodeBackend;
    try {
      const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
      const out = b.binding.executeOp(
        '_MklNativeMaxPool',
        mklPoolAttrs(b, [2, 2], [2, 2]),
        b.getInputTensorIds([x]),
        2,
      );
      x.dispose();
      for (const o of out) b.binding.deleteTensor(o.id);
      mklPooling = out.length === 2;
    } catch {
      mklPooling = false;
    }
  }
  return mklPooling;
}

/** oneDNN's 'valid' max pooling of a float32 NHWC tensor: the pooled values and the (opaque) workspace. */
export function mklMaxPool(
  x: tf.Tensor4D,
  ksize: [number, number],
  strides: [number, number],
): { y: tf.Tensor4D; workspace: tf.Tensor } {
  const b = tf.backend() as unknown as TfjsNodeBackend;
  const [y, ws] = b.binding.executeOp(
    '_MklNativeMaxPool',
    mklPoolAttrs(b, ksize, strides),
    b.getInputTensorIds([x]),
    2,
  );
  return { y: b.createOutputTensor(y) as tf.Tensor4D, workspace: b.createOutputTensor(ws) };
}

/** oneDNN's max pooling gradient: dy scattered through the workspace of mklMaxPool(x) = y. */
export function mklMaxPoolGrad(
  x: tf.Tensor4D,
  y: tf.Tensor4D,
  dy: tf.Tensor4D,
  workspace: tf.Tensor,
  ksize: [number, number],
  strides: [number, number],
): tf.Tensor4D {
  const b = tf.backend() as unknown as TfjsNodeBackend;
  const ids = b.getInputTensorIds([x, y, dy, workspace]);
  const [g] = b.binding.executeOp('_MklNativeMaxPoolGrad', mklPoolAttrs(b, ksize, strides), ids, 1);
  return b.createOutputTensor(g) as tf.Tensor4D;
}

// Conv2D, bias and relu in one oneDNN kernel (numerics 2 only, and only where it gives the same bits). Eager execution
// runs Conv2D by oneDNN (TensorFlow rewrites it to _MklNativeConv2D) but the bias Add and the Relu as two more passes
// over the conv's output: for the mnist-cnn's first conv at batch 64, 5.5 MB written and read twice more, 1.6 ms of the
// 2.7 the three ops take. oneDNN's fused convolution (_MklNativeFusedConv2D, fused_ops [BiasAdd, Relu]) adds the bias
// and clamps while the output is still in cache. It adds the bias after the accumulation, as the Add does, and flushes
// denormals as TensorFlow's Eigen ops do, so its output is the same bit for bit (tested, denormal sums included) and
// the run's numerics do not change. As insurance against a CPU or library whose kernel differs, each signature (shapes
// and activation) is checked once in a process against the three separate ops on its first real input; on any
// difference the three ops are used for it from then on (fusedConvAgrees). It needs list attributes, which
// tfjs-node's binding gets from setup:native (scripts/tfjs-binding-patch.js): an older build fails the probe and
// the three ops are used.
let mklFusedConv: boolean | undefined;
const fusedConvChecks = new ShapeChecks();

/** Turns the fused convolution off (the three separate ops) or back on, in this process: for tests and benchmarks. */
export function allowFusedConv(on: boolean): void {
  fusedConvChecks.allowed = on;
}

/** Fused convolutions run, signatures checked and found to differ, in this process. */
export function fusedConvStats(): ShapeCheckStats {
  return fusedConvChecks.stats();
}

function fusedConvAttrs(b: TfjsNodeBackend, relu: boolean) {
  return [
    { name: 'T', type: b.binding.TF_ATTR_TYPE, value: b.binding.TF_FLOAT },
    { name: 'strides', type: b.binding.TF_ATTR_INT, value: [1, 1, 1, 1] },
    { name: 'padding', type: b.binding.TF_ATTR_STRING, value: 'VALID' },
    { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'dilations', type: b.binding.TF_ATTR_INT, value: [1, 1, 1, 1] },
    { name: 'num_args', type: b.binding.TF_ATTR_INT, value: 1 },
    { name: 'TArgs', type: b.binding.TF_ATTR_TYPE, value: [b.binding.TF_FLOAT] },
    { name: 'fused_ops', type: b.binding.TF_ATTR_STRING, value: relu ? ['BiasAdd', 'Relu'] : ['BiasAdd'] },
    { name: 'epsilon', type: b.binding.TF_ATTR_FLOAT, value: 0 },
    { name: '_kernel', type: b.binding.TF_ATTR_STRING, value: 'MklNameChangeOp' },
  ];
}

/** Whether oneDNN's fused convolution can be run here (tensorflow backend with oneDNN, binding with list attributes). */
export function hasMklFusedConv(): boolean {
  if (tf.getBackend() !== 'tensorflow') return false;
  if (mklFusedConv === undefined) {
    try {
      const y = tf.tidy(() =>
        mklFusedConv2D(tf.ones([1, 3, 3, 1]), tf.ones([3, 3, 1, 1]), tf.scalar(1).reshape([1]), true),
      );
      mklFusedConv = y.dataSync()[0] === 10;
      y.dispose();
    } catch (err) {
      mklFusedConv = false;
      process.emitWarning(
        `oneDNN's fused convolution is unavailable, convolutions run as three ops (${(err as Error).message.split('\n')[0]}); ` +
          'a tfjs-node binding built by an older `npm run setup:native` lacks list attributes: run it again',
      );
    }
  }
  return mklFusedConv;
}

/** oneDNN's stride-1 'valid' float32 NHWC convolution of x by w, plus bias, then relu when `relu`: one kernel. */
export function mklFusedConv2D(x: tf.Tensor4D, w: tf.Tensor4D, bias: tf.Tensor1D, relu: boolean): tf.Tensor4D {
  const b = tf.backend() as unknown as TfjsNodeBackend;
  fusedConvChecks.ran();
  const [y] = b.binding.executeOp(
    '_MklNativeFusedConv2D',
    fusedConvAttrs(b, relu),
    b.getInputTensorIds([x, w, bias]),
    1,
  );
  return b.createOutputTensor(y) as tf.Tensor4D;
}

/**
 * Whether mklFusedConv2D gives, for this signature, the same bits as Conv2D, Add and Relu: checked once per process
 * and signature on the first input given (x, w, bias are only read). False where the fused kernel cannot run.
 */
export function fusedConvAgrees(x: tf.Tensor4D, w: tf.Tensor4D, bias: tf.Tensor1D, relu: boolean): boolean {
  if (!fusedConvChecks.allowed || x.dtype !== 'float32' || w.dtype !== 'float32' || bias.dtype !== 'float32')
    return false;
  if (!hasMklFusedConv()) return false;
  const key = `${x.shape.join('x')}|${w.shape.join('x')}|${relu ? 'relu' : 'linear'}`;
  let ok = fusedConvChecks.verdict(key);
  if (ok === undefined) {
    const [fused, separate] = tf.tidy(() => {
      const z = tf.add(tf.conv2d(x, w, 1, 'valid'), bias);
      return [mklFusedConv2D(x, w, bias, relu), relu ? tf.relu(z) : z];
    });
    const a = fused.dataSync() as Float32Array;
    const e = separate.dataSync() as Float32Array;
    const at = firstDifferingByte(
      new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
      new Uint8Array(e.buffer, e.byteOffset, e.byteLength),
    );
    tf.dispose([fused, separate]);
    ok = at < 0;
    // One line per process (the first shape), not one per shape: it is a fact about this CPU, not a problem.
    if (fusedConvChecks.record(key, ok)) {
      const i = Math.floor(at / 4);
      process.stderr.write(
        `durable-train: on this CPU oneDNN's fused convolution gives other bits than Conv2D+Add+Relu (${key}, element ` +
          `${i}: ${a[i]}, not ${e[i]}): such convolutions use the separate ops, which keep the weights exact\n`,
      );
    }
  }
  return ok;
}

/**
 * A float32 tensor holding a copy of `values`, made now: on tensorflow the copy goes into TensorFlow at once (tfjs-node
 * would otherwise keep the array itself as the tensor's data until its first use), elsewhere tf.tensor of a copy.
 * For arrays the caller writes again later (Adam's host weights, training/wasm/adam.ts).
 */
export function tensorOfCopy(values: Float32Array, shape: number[]): tf.Tensor {
  if (tf.getBackend() !== 'tensorflow') return tf.tensor(values.slice(), shape, 'float32');
  const b = tf.backend() as unknown as TfjsNodeBackend;
  const id = b.binding.createTensor(shape, b.binding.TF_FLOAT, values);
  return b.createOutputTensor({ id, shape, dtype: b.binding.TF_FLOAT });
}

/**
 * Copies float32 tensor `t` into `into` (of its length). On tensorflow straight from TensorFlow's buffer where the
 * binding has tensorDataInto (setup:native), where dataSync would allocate a new array per read; else via dataSync.
 */
export function readInto(t: tf.Tensor, into: Float32Array): void {
  if (t.dtype === 'float32' && tf.getBackend() === 'tensorflow') {
    const b = tf.backend() as unknown as TfjsNodeBackend;
    if (b.binding.tensorDataInto) {
      b.binding.tensorDataInto(b.getInputTensorIds([t])[0], into);
      return;
    }
  }
  const values = t.dataSync() as Float32Array;
  if (values.length !== into.length) throw new Error(`readInto: ${values.length} values into ${into.length}`);
  into.set(values);
}

let registered = false;
const originals: Partial<Record<Replaced, tf.KernelConfig>> = {};

/** tfjs-node's own kernel that ours replaced (for tests comparing the two); after registration only. */
export function tfjsNodeKernel(name: Replaced): tf.KernelFunc {
  const k = originals[name];
  if (!k) throw new Error(`tensorflow ${name}: ours is not registered`);
  return k.kernelFunc;
}

type Replaced = 'Step' | 'Cast' | 'Reshape' | 'Sum';
type KernelFn = (args: Parameters<tf.KernelFunc>[0], original: tf.KernelFunc) => ReturnType<tf.KernelFunc>;

/** Registers `kernelFunc` for tfjs-node's kernel `name` (which it may call), keeping the original for the tests. */
function replaceKernel(name: Replaced, kernelFunc: KernelFn): void {
  const original = tf.getKernel(name, 'tensorflow');
  if (!original) return;
  originals[name] = original;
  tf.unregisterKernel(name, 'tensorflow');
  tf.registerKernel({
    kernelName: name,
    backendName: 'tensorflow',
    kernelFunc: (args) => kernelFunc(args, original.kernelFunc),
  });
}

/** Replaces tfjs-node's Step, Cast, Reshape and Sum kernels; call once the tensorflow backend is registered. Idempotent. */
export function registerTensorflowKernels(): void {
  if (registered) return;
  if (!tf.getKernel('Step', 'tensorflow')) return; // no tensorflow backend in this process
  replaceKernel('Step', (args, original) => {
    const x = args.inputs.x as tf.Tensor;
    const alpha = (args.attrs as { alpha?: number } | undefined)?.alpha ?? 0;
    if (x.dtype !== 'float32' || alpha !== 0) return original(args);
    return tf.tidy(() => tf.where(tf.isNaN(x), x, tf.cast(tf.greater(x, tf.scalar(0, 'float32')), 'float32')));
  });
  replaceKernel('Cast', (args, original) => {
    const x = args.inputs.x as tf.TensorInfo;
    if ((args.attrs as { dtype?: string } | undefined)?.dtype !== x.dtype) return original(args);
    (args.backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
  replaceKernel('Reshape', (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const b = args.backend as unknown as TfjsNodeBackend;
    const shape = (args.attrs as unknown as { shape: number[] }).shape;
    const attrs = [
      { name: 'T', type: b.binding.TF_ATTR_TYPE, value: b.getDTypeInteger(x.dtype) },
      { name: 'Tshape', type: b.binding.TF_ATTR_TYPE, value: b.binding.TF_INT32 },
    ];
    return withInt32Constant(b, 'Reshape', attrs, x, shape);
  });
  replaceKernel('Sum', (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const b = args.backend as unknown as TfjsNodeBackend;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    return withInt32Constant(b, 'Sum', b.createReductionOpAttrs(x, keepDims), x, tf.util.parseAxisParam(axis, x.shape));
  });
  if (!tf.getKernel(TF_RELU_GRAD, 'tensorflow')) {
    tf.registerKernel({
      kernelName: TF_RELU_GRAD,
      backendName: 'tensorflow',
      kernelFunc: (args) => {
        const { dy, x } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
        const backend = args.backend as unknown as TfjsNodeBackend;
        const t = { name: 'T', type: backend.binding.TF_ATTR_TYPE, value: backend.binding.TF_FLOAT };
        return backend.executeSingleOutput('ReluGrad', [t], [dy, x]);
      },
    });
  }
  registered = true;
}
