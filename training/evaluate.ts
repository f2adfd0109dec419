// Evaluation of a split (validation or test), batched, no randomness: loss and accuracy (classification, binary at
// a probability above 0.5) or mae and mse (regression), and the metrics a spec asks for (eval-metrics.ts).
import * as tf from '@tensorflow/tfjs';
import type { RunSpec } from '../spec/types';
import { extraMetrics } from './eval-metrics';
import { argmaxRow, binaryLoss, regressionLoss, type EvalAcc } from './losses';
import type { Net } from './models';
import type { DataSplit } from './data';
import type { TaskData } from './task-data';
import type { EvalResult } from './trainer-types';

export const EVAL_BATCH = 250;

export type SplitName = 'validation' | 'test';

/** The rows an evaluation of `split` covers: all, or the first evaluation.maxRows of the validation split. */
export function evalRows(data: TaskData, split: SplitName, spec: Pick<RunSpec, 'evaluation'>): DataSplit {
  const s = split === 'validation' ? data.validation : data.test;
  if (!s) throw new Error(`evaluate: ${data.name} has no ${split} split`);
  const max = split === 'validation' ? spec.evaluation?.maxRows : undefined;
  if (max === undefined || max >= s.n) return s;
  return { x: s.x.subarray(0, max * data.featureSize), y: s.y.subarray(0, max), n: max };
}

export function evalOf(
  data: TaskData,
  rows: DataSplit,
  acc: EvalAcc,
  metrics?: RunSpec['metrics'],
): Omit<EvalResult, 'epoch' | 'step'> {
  const n = rows.n;
  if (data.task === 'regression') return { loss: acc.loss / n, accuracy: null, mae: acc.abs / n, mse: acc.sq / n };
  const scores = data.task === 'binary' ? acc.scores : null;
  return {
    loss: acc.loss / n,
    accuracy: acc.correct / n,
    ...extraMetrics(metrics, data.task, acc.predicted, acc.labels, scores),
  };
}

/** A batch of examples as a tensor of [count, ...featureShape]. */
export function examples(data: TaskData, x: Float32Array, count: number): tf.Tensor {
  return tf.tensor(x, [count, ...data.featureShape], 'float32');
}

/** Adds the examples of `test` (a split's rows) from `start` (one batch) to `acc`. */
export function evalBatch(
  net: Net,
  data: TaskData,
  test: DataSplit,
  loss: RunSpec['loss'],
  start: number,
  acc: EvalAcc,
): void {
  const size = data.featureSize;
  const count = Math.min(EVAL_BATCH, test.n - start);
  const classify = data.task === 'classification';
  const out = tf.tidy(() => {
    const y = net.forward(examples(data, test.x.subarray(start * size, (start + count) * size), count));
    return classify ? tf.logSoftmax(y) : y;
  });
  try {
    const v = out.dataSync() as Float32Array;
    if (classify) {
      const C = data.outputs;
      for (let k = 0; k < count; k++) {
        const label = test.y[start + k];
        acc.loss -= v[k * C + label];
        const predicted = argmaxRow(v, k, C);
        if (predicted === label) acc.correct += 1;
        acc.predicted.push(predicted);
        acc.labels.push(label);
      }
    } else if (data.task === 'binary') {
      for (let k = 0; k < count; k++) {
        const label = test.y[start + k];
        const z = v[k];
        acc.loss += binaryLoss(z, label);
        // Keras's binary accuracy: class 1 when the probability is above 0.5, i.e. the logit above 0.
        const predicted = z > 0 ? 1 : 0;
        if (predicted === label) acc.correct += 1;
        acc.predicted.push(predicted);
        acc.labels.push(label);
        acc.scores.push(z);
      }
    } else {
      for (let k = 0; k < count; k++) {
        const d = v[k] - test.y[start + k];
        acc.abs += Math.abs(d);
        acc.sq += d * d;
        acc.loss += regressionLoss(loss, d);
      }
    }
  } finally {
    out.dispose();
  }
}
