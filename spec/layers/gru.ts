import { INPUT_SHAPE, RULES, type LayerKindSpec } from './rules';

export const gru: LayerKindSpec = {
  type: 'gru',
  className: 'GRU',
  options: {
    units: RULES.required(RULES.posInt),
    activation: RULES.activation,
    recurrentActivation: RULES.recurrentActivation,
    useBias: RULES.bool,
    returnSequences: RULES.bool,
    dropout: RULES.rate,
    recurrentDropout: RULES.rate,
    ...INPUT_SHAPE,
  },
  weighted: true,
  check: (o) => (o.activation === 'softmax' ? ['activation', 'gru supports every activation but softmax'] : null),
};
