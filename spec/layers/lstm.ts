import { recurrentKind } from './rules';

export const lstm = recurrentKind('lstm', 'LSTM');
