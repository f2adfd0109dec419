import * as tf from '@tensorflow/tfjs';
import { zeroPadding2d as spec } from '../../spec/layers/zeroPadding2d';
import type { AnyCfg, LayerKind } from './kind';

/** [[top, bottom], [left, right]] from n, [rows, cols] or the full form (tfjs's config holds the full form). */
function amounts(v: unknown): [[number, number], [number, number]] {
  if (v == null)
    return [
      [1, 1],
      [1, 1],
    ];
  if (typeof v === 'number')
    return [
      [v, v],
      [v, v],
    ];
  const [r, c] = v as Array<number | number[]>;
  const side = (s: number | number[]): [number, number] => (Array.isArray(s) ? [s[0], s[1]] : [s, s]);
  return [side(r), side(c)];
}

export const zeroPadding2d: LayerKind = {
  spec,
  build: (c) => tf.layers.zeroPadding2d(c as AnyCfg),
  roles: [],
  forward: ([h], _v, cfg) => {
    const [rows, cols] = amounts(cfg.padding);
    return tf.pad(h, [[0, 0], rows, cols, [0, 0]]);
  },
};
