// One evaluation as the CLI shows it: the split named, accuracy (classification) or mse/mae (regression), and loss.
import type { EvalResult } from '../activities/types';
import { fmt } from './common';

export function evalLine(
  split: 'validation' | 'test',
  e: Pick<EvalResult, 'accuracy' | 'mse' | 'mae'> & { loss: number | null },
): string {
  return e.mse !== undefined
    ? `${split} mse ${fmt(e.mse)}  ${split} mae ${fmt(e.mae ?? null)}  ${split} loss ${fmt(e.loss)}`
    : `${split} accuracy ${fmt(e.accuracy)}  ${split} loss ${fmt(e.loss)}`;
}
