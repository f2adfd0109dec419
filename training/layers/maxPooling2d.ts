import * as tf from '@tensorflow/tfjs';
import { maxPooling2d as spec } from '../../spec/layers/maxPooling2d';
import { hasMklPooling, mklMaxPool, mklMaxPoolGrad, reluGrad } from '../kernels/tensorflow';
import { sameButZeroSigns } from '../compare';
import { ShapeChecks, type ShapeCheckStats } from '../kernels/shape-checks';
import { pair, type AnyCfg, type LayerKind } from './kind';
import { reluMasks } from './ops';

// Numerics 2 on tensorflow: 'valid' max pooling by oneDNN, whose gradient scatters through the forward pass's workspace
// (kernels/tensorflow.ts). The workspace stays out of the tape, held here until the gradient uses it; one left by a
// forward pass whose gradient never ran (a failed step) is freed at the next training forward pass.
const pendingWorkspaces = new Set<tf.Tensor>();

// With `reluMask` the input is a relu's output read by nothing else, whose gradient mask this gradient applies, to the
// pooled gradient against the pooled values (ops.ts ReluMask): one ReluGrad over a quarter of the values (2x2 windows),
// not over all of them. The first time in a process for a shape it is checked against the relu's mask applied after
// the pooling's gradient on that real input (the same values, zeros' signs aside); on any other difference that
// order is used for the shape from then on (the result is the same either way; only the work differs).
const pooledReluChecks = new ShapeChecks();

/** Turns the relu mask on the pooled gradient off (the mask after the pooling's gradient) or on: tests, benchmarks. */
export function allowPooledRelu(on: boolean): void {
  pooledReluChecks.allowed = on;
}

/** Pooling gradients that applied a relu's mask, shapes checked, and shapes found to differ, in this process. */
export function pooledReluStats(): ShapeCheckStats {
  return pooledReluChecks.stats();
}

/** `poolGrad` (the pooling's gradient of a pooled gradient) with the relu's mask of x (= the pooling's input) in it. */
function poolGradReluMasked(
  x: tf.Tensor4D,
  y: tf.Tensor4D,
  dy: tf.Tensor4D,
  poolGrad: (dy: tf.Tensor4D) => tf.Tensor4D,
  key: string,
): tf.Tensor4D {
  pooledReluChecks.ran();
  const after = () => reluGrad(poolGrad(dy), x);
  const ok = pooledReluChecks.verdict(key);
  if (ok === false) return tf.tidy(after);
  const before = tf.tidy(() => poolGrad(reluGrad(dy, y)));
  if (ok) return before;
  const reference = tf.tidy(after);
  const same = sameButZeroSigns(before.dataSync() as Float32Array, reference.dataSync() as Float32Array);
  pooledReluChecks.record(key, same);
  tf.dispose(same ? reference : before);
  return same ? before : reference;
}

function maxPoolOneDnn(
  h: tf.Tensor4D,
  ksize: [number, number],
  strides: [number, number],
  reluMask: boolean,
): tf.Tensor4D {
  const op = tf.customGrad(((x: tf.Tensor4D, save: tf.GradSaveFunc) => {
    const { y, workspace } = mklMaxPool(x, ksize, strides);
    save([x, y]);
    const kept = tf.keep(workspace);
    pendingWorkspaces.add(kept);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sy] = saved as [tf.Tensor4D, tf.Tensor4D];
        const poolGrad = (d: tf.Tensor4D) => mklMaxPoolGrad(sx, sy, d, kept, ksize, strides);
        const g = reluMask
          ? poolGradReluMasked(sx, sy, dy, poolGrad, `${sx.shape.join('x')}|${ksize.join('x')}|${strides.join('x')}`)
          : poolGrad(dy);
        pendingWorkspaces.delete(kept);
        kept.dispose();
        return g;
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor4D>>[0]);
  return op(h);
}

/**
 * Takes over the relu's gradient mask of `h` when it is a fused conv+relu's output read only here (ops.ts ReluMask),
 * for windows that tile the input (each value in at most one window).
 */
function takeReluMask(h: tf.Tensor, ksize: [number, number], strides: [number, number]): boolean {
  const mask = reluMasks.get(h);
  if (!mask || !pooledReluChecks.allowed || ksize[0] !== strides[0] || ksize[1] !== strides[1]) return false;
  reluMasks.delete(h);
  mask.appliedByReader = true;
  return true;
}

/** Frees the workspaces of forward passes whose gradient never ran (called at the start of a training forward pass). */
export function freePendingWorkspaces(): void {
  if (!pendingWorkspaces.size) return;
  tf.dispose([...pendingWorkspaces]);
  pendingWorkspaces.clear();
}

export const maxPooling2d: LayerKind = {
  spec,
  build: (c) => tf.layers.maxPooling2d(c as AnyCfg),
  roles: [],
  forward: ([h], _v, cfg, ctx) =>
    ctx.dropoutMask && ctx.numerics === 2 && cfg.padding === 'valid' && h.dtype === 'float32' && hasMklPooling()
      ? maxPoolOneDnn(
          h as tf.Tensor4D,
          pair(cfg.poolSize),
          pair(cfg.strides),
          takeReluMask(h, pair(cfg.poolSize), pair(cfg.strides)),
        )
      : tf.maxPool(h as tf.Tensor4D, pair(cfg.poolSize), pair(cfg.strides), cfg.padding as 'valid' | 'same'),
};
