import * as tf from '@tensorflow/tfjs';
import { separableConv2d as spec } from '../../spec/layers/separableConv2d';
import { activate } from './activations';
import { depthwiseOf } from './depthwiseConv2d';
import { type AnyCfg, type LayerKind } from './kind';
import { validConv } from './ops';

// tfjs-layers 4.22's SeparableConv2D leaves depthMultiplier out of its config, so a saved model.json (an export, a
// checkpointed topology) reloads in tfjs and Keras with multiplier 1 and its depthwise kernel no longer fits. The
// class's config is made to carry it, once, for every SeparableConv2D (built from a spec or loaded from a model file).
const [SeparableConv2DClass] = tf.serialization.SerializationMap.getMap().classNameMap.SeparableConv2D as unknown as [
  { prototype: { getConfig(): tf.serialization.ConfigDict; depthMultiplier?: number } },
];
const configWithoutMultiplier = SeparableConv2DClass.prototype.getConfig;
SeparableConv2DClass.prototype.getConfig = function (this: { depthMultiplier?: number }) {
  return { ...configWithoutMultiplier.call(this), depthMultiplier: this.depthMultiplier ?? 1 };
};

export const separableConv2d: LayerKind = {
  spec,
  build: (c) =>
    tf.layers.separableConv2d({
      ...(c as AnyCfg),
      depthwiseInitializer: 'zeros',
      pointwiseInitializer: 'zeros',
      biasInitializer: 'zeros',
    }),
  roles: ['depthwise_kernel', 'pointwise_kernel', 'bias'],
  // Keras's: the depthwise convolution (strides, padding), then a 1x1 convolution by the pointwise kernel, the bias
  // and the activation.
  forward: ([h], v, cfg, ctx) => {
    const d = depthwiseOf(h, v, cfg, ctx);
    const y = validConv(ctx.numerics, true)(d, v.pointwise_kernel as tf.Tensor4D);
    return activate(v.bias ? tf.add(y, v.bias) : y, cfg.activation, ctx.isLast, ctx.numerics === 2);
  },
};
