// One evaluation as the CLI shows it: the split named, accuracy (classification, binary) and the metrics the spec asks
// for (auc, precision, recall, f1) or mse/mae (regression), and loss.
import type { EvalResult } from '../activities/types';
import { EXTRA_METRICS, type ExtraMetricName } from '../spec/catalog';
import { fmt } from './common';

export function evalLine(
  split: 'validation' | 'test',
  e: Pick<EvalResult, 'accuracy' | 'mse' | 'mae' | ExtraMetricName> & { loss: number | null },
): string {
  const extra = EXTRA_METRICS.filter((m) => e[m] !== undefined)
    .map((m) => `  ${split} ${m} ${fmt(e[m] ?? null)}`)
    .join('');
  return e.mse !== undefined
    ? `${split} mse ${fmt(e.mse)}  ${split} mae ${fmt(e.mae ?? null)}  ${split} loss ${fmt(e.loss)}`
    : `${split} accuracy ${fmt(e.accuracy)}${extra}  ${split} loss ${fmt(e.loss)}`;
}
