import * as tf from '@tensorflow/tfjs';
import { maxPooling2d as spec } from '../../spec/layers/maxPooling2d';
import { hasMklPooling, mklMaxPool, mklMaxPoolGrad } from '../kernels/tensorflow';
import { pair, type AnyCfg, type LayerKind } from './kind';

// Numerics 2 on tensorflow: 'valid' max pooling by oneDNN, whose gradient scatters through the forward pass's workspace
// (kernels/tensorflow.ts). The workspace stays out of the tape, held here until the gradient uses it; one left by a
// forward pass whose gradient never ran (a failed step) is freed at the next training forward pass.
const pendingWorkspaces = new Set<tf.Tensor>();

function maxPoolOneDnn(h: tf.Tensor4D, ksize: [number, number], strides: [number, number]): tf.Tensor4D {
  const op = tf.customGrad(((x: tf.Tensor4D, save: tf.GradSaveFunc) => {
    const { y, workspace } = mklMaxPool(x, ksize, strides);
    save([x, y]);
    const kept = tf.keep(workspace);
    pendingWorkspaces.add(kept);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sy] = saved as [tf.Tensor4D, tf.Tensor4D];
        const g = mklMaxPoolGrad(sx, sy, dy, kept, ksize, strides);
        pendingWorkspaces.delete(kept);
        kept.dispose();
        return g;
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor4D>>[0]);
  return op(h);
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
      ? maxPoolOneDnn(h as tf.Tensor4D, pair(cfg.poolSize), pair(cfg.strides))
      : tf.maxPool(h as tf.Tensor4D, pair(cfg.poolSize), pair(cfg.strides), cfg.padding as 'valid' | 'same'),
};
