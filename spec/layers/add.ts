import { sameShapes, type LayerKindSpec } from './rules';

export const add: LayerKindSpec = {
  type: 'add',
  className: 'Add',
  options: {},
  weighted: false,
  merge: true,
  checkInputShapes: sameShapes('add'),
};
