import { sameShapes, type LayerKindSpec } from './rules';

export const average: LayerKindSpec = {
  type: 'average',
  className: 'Average',
  options: {},
  weighted: false,
  merge: true,
  checkInputShapes: sameShapes('average'),
};
