import { recurrentKind } from './rules';

export const gru = recurrentKind('gru', 'GRU');
