import type { LayerKindSpec } from './rules';

const isAxis = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v !== 0 && v >= -4 && v <= 4;

export const concatenate: LayerKindSpec = {
  type: 'concatenate',
  className: 'Concatenate',
  options: { axis: { ok: isAxis, what: 'an axis: -1 (the last, the default), or 1 to 4 (0 is the batch)' } },
  weighted: false,
  merge: true,
  checkInputShapes: (shapes, options) => {
    const rank = shapes[0].length;
    const axis = typeof options.axis === 'number' ? options.axis : -1;
    const at = axis < 0 ? rank + axis : axis - 1;
    if (at < 0 || at >= rank) return `axis ${axis} is out of range for inputs of shape ${JSON.stringify(shapes[0])}`;
    for (const [i, s] of shapes.entries()) {
      if (s.length !== rank || s.some((d, k) => k !== at && d !== shapes[0][k]))
        return `concatenate needs inputs of one shape but along axis ${axis}; input 1 is ${JSON.stringify(shapes[0])}, input ${i + 1} is ${JSON.stringify(s)}`;
    }
    return null;
  },
};
