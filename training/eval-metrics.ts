// Evaluation metrics beyond loss and accuracy, by name (spec.metrics): computed on the host in float64 from the
// scores and labels of a whole split, so they do not depend on batch boundaries.
import type { EvalMetricName } from '../spec/types';

/**
 * The area under the ROC curve of `scores` for labels 0/1: the Mann-Whitney statistic with tied scores given their
 * average rank (exactly what the trapezoidal ROC area gives), or null when one class is absent (it is undefined).
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number | null {
  const n = scores.length;
  if (labels.length !== n) throw new Error(`rocAuc: ${n} scores for ${labels.length} labels`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const rank = (i + j + 2) / 2; // ranks i+1 .. j+1 share their mean
    for (let k = i; k <= j; k++) {
      if (labels[order[k]] === 1) {
        positives += 1;
        rankSum += rank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return null;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

export interface Prf {
  precision: number;
  recall: number;
  f1: number;
}

/** Precision, recall and F1 of one class from its counts; 0 where a ratio has nothing to count (scikit-learn's). */
function prfOf(tp: number, fp: number, fn: number): Prf {
  return {
    precision: tp + fp > 0 ? tp / (tp + fp) : 0,
    recall: tp + fn > 0 ? tp / (tp + fn) : 0,
    f1: 2 * tp + fp + fn > 0 ? (2 * tp) / (2 * tp + fp + fn) : 0,
  };
}

/** Precision, recall and F1 of class 1 (binary). */
export function binaryPrf(predicted: ArrayLike<number>, labels: ArrayLike<number>): Prf {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < labels.length; i++) {
    if (predicted[i] === 1 && labels[i] === 1) tp++;
    else if (predicted[i] === 1) fp++;
    else if (labels[i] === 1) fn++;
  }
  return prfOf(tp, fp, fn);
}

/** Macro averages of precision, recall and F1 over the classes present in the labels or the predictions. */
export function macroPrf(predicted: ArrayLike<number>, labels: ArrayLike<number>): Prf {
  const counts = new Map<number, { tp: number; fp: number; fn: number }>();
  const at = (c: number) => {
    let e = counts.get(c);
    if (!e) counts.set(c, (e = { tp: 0, fp: 0, fn: 0 }));
    return e;
  };
  for (let i = 0; i < labels.length; i++) {
    if (predicted[i] === labels[i]) at(labels[i]).tp++;
    else {
      at(predicted[i]).fp++;
      at(labels[i]).fn++;
    }
  }
  const sum = { precision: 0, recall: 0, f1: 0 };
  for (const { tp, fp, fn } of counts.values()) {
    const m = prfOf(tp, fp, fn);
    sum.precision += m.precision;
    sum.recall += m.recall;
    sum.f1 += m.f1;
  }
  const k = Math.max(1, counts.size);
  return { precision: sum.precision / k, recall: sum.recall / k, f1: sum.f1 / k };
}

export interface ExtraMetrics {
  auc?: number | null;
  precision?: number;
  recall?: number;
  f1?: number;
}

/**
 * The asked metrics (accuracy aside: every classification and binary evaluation has it) of a split's predictions:
 * `scores` are binary logits (null for classification), `predicted` and `labels` class indices.
 */
export function extraMetrics(
  names: readonly EvalMetricName[] | undefined,
  task: 'classification' | 'binary',
  predicted: ArrayLike<number>,
  labels: ArrayLike<number>,
  scores: ArrayLike<number> | null,
): ExtraMetrics {
  const out: ExtraMetrics = {};
  if (!names?.length) return out;
  const prf = names.some((m) => m === 'precision' || m === 'recall' || m === 'f1')
    ? task === 'binary'
      ? binaryPrf(predicted, labels)
      : macroPrf(predicted, labels)
    : null;
  for (const m of names) {
    if (m === 'auc') out.auc = scores ? rocAuc(scores, labels) : null;
    else if (m !== 'accuracy' && prf) out[m] = prf[m];
  }
  return out;
}
