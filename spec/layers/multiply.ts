import { sameShapes, type LayerKindSpec } from './rules';

export const multiply: LayerKindSpec = {
  type: 'multiply',
  className: 'Multiply',
  options: {},
  weighted: false,
  merge: true,
  checkInputShapes: sameShapes('multiply'),
};
