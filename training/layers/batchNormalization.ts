import * as tf from '@tensorflow/tfjs';
import { batchNormalization as spec } from '../../spec/layers/batchNormalization';
import type { AnyCfg, Cfg, LayerKind, StateUpdates, Vars } from './kind';

/** Batch normalization over the last axis; in training (`updates` given) with batch statistics. */
function batchNorm(h: tf.Tensor, v: Vars, cfg: Cfg, updates: StateUpdates | null): tf.Tensor {
  const eps = Number(cfg.epsilon ?? 1e-3);
  const momentum = Number(cfg.momentum ?? 0.99);
  const axes = h.shape.slice(0, -1).map((_, i) => i);
  let mean: tf.Tensor;
  let variance: tf.Tensor;
  if (updates) {
    const m = tf.moments(h, axes);
    mean = m.mean;
    variance = m.variance;
    const mm = v.moving_mean!;
    const mv = v.moving_variance!;
    updates.push([mm, tf.keep(tf.add(tf.mul(mm, momentum), tf.mul(mean, 1 - momentum)))]);
    updates.push([mv, tf.keep(tf.add(tf.mul(mv, momentum), tf.mul(variance, 1 - momentum)))]);
  } else {
    mean = v.moving_mean!;
    variance = v.moving_variance!;
  }
  let y = tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, eps)));
  if (v.gamma) y = tf.mul(y, v.gamma);
  if (v.beta) y = tf.add(y, v.beta);
  return y;
}

export const batchNormalization: LayerKind = {
  spec,
  build: (c) =>
    tf.layers.batchNormalization({
      ...(c as AnyCfg),
      axis: -1,
      betaInitializer: 'zeros',
      gammaInitializer: 'ones',
      movingMeanInitializer: 'zeros',
      movingVarianceInitializer: 'ones',
    }),
  roles: ['gamma', 'beta', 'moving_mean', 'moving_variance'],
  forward: ([h], v, cfg, ctx) => batchNorm(h, v, cfg, ctx.dropoutMask ? (ctx.updates ?? []) : null),
};
