// The chart model: what the report draws (panels of series over steps, their axes and ticks, and the marks
// for checkpoints, recoveries and learning-rate changes), independent of how it is drawn.
// Training curves come from the run's metrics log at step resolution: the raw points as a faint line and an
// exponential moving average over them as the curve to read, as TensorBoard draws them. Runs from before the log
// (no segments stored) fall back to the chunk summaries of the workflow history.
import { seriesOf, type MetricsLog } from '../../telemetry/metrics-log';
import type { ChunkRecord, ReportData } from './data';

export interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
  markers: boolean;
  line: boolean;
  /** Stroke width (default 1.8). */
  width?: number;
  /** Dash length (default solid). */
  dash?: number;
  /** Stroke opacity (default 1): the raw points under their smoothed curve are faint. */
  opacity?: number;
}

/** The smoothing weight of the EMA line: TensorBoard's default (its slider). */
export const SMOOTHING = 0.6;

/**
 * TensorBoard's smoothing: an exponential moving average, debiased for its zero start (so the first points are
 * not pulled towards 0). Non-finite values pass through unsmoothed.
 */
export function emaSmooth(points: Array<[number, number]>, weight = SMOOTHING): Array<[number, number]> {
  let last = 0;
  let n = 0;
  return points.map(([x, v]) => {
    if (!Number.isFinite(v)) return [x, v];
    last = last * weight + (1 - weight) * v;
    n += 1;
    return [x, last / (1 - Math.pow(weight, n))];
  });
}

export interface Panel {
  title: string;
  series: Series[];
  yDomain: [number, number];
  yTicks: number[];
  format: (v: number) => string;
  /** Whether the legend names the marks too (they are the same on every panel: the first one says it). */
  legendMarks?: boolean;
}

export type MarkKind = 'checkpoint' | 'sync' | 'recovery' | 'lr-change';

export interface Mark {
  step: number;
  kind: MarkKind;
  label: string;
}

export const MARK_STYLE: Record<MarkKind, { color: string; dash: number; width: number; legend: string }> = {
  checkpoint: { color: '#9aa4b2', dash: 3, width: 1, legend: 'checkpoint' },
  sync: { color: '#17becf', dash: 2, width: 1, legend: 'sync round' },
  recovery: { color: '#d62728', dash: 0, width: 2, legend: 'recovery' },
  'lr-change': { color: '#9467bd', dash: 6, width: 1, legend: 'set-lr' },
};

export interface ChartModel {
  /** The x axis runs over steps 0..xMax. */
  xMax: number;
  xTicks: number[];
  panels: Panel[];
  marks: Mark[];
}

/** Round tick values (1, 2, 2.5, 5 times a power of ten) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function domainOf(values: number[], floorZero: boolean): [number, number] {
  const finite = values.filter((v) => Number.isFinite(v));
  if (!finite.length) return [0, 1];
  let lo = floorZero ? Math.min(0, ...finite) : Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi === lo) {
    hi = hi === 0 ? 1 : hi * 1.1;
    lo = floorZero ? Math.min(0, lo) : lo * 0.9;
  }
  return [lo, hi + (hi - lo) * 0.05];
}

const fmtLr = (v: number) =>
  v === 0 ? '0' : Math.abs(v) < 0.01 ? v.toExponential(1) : String(Number(v.toPrecision(3)));
const fmtNum = (v: number) => String(Number(v.toPrecision(3)));

function panel(title: string, series: Series[], yDomain: [number, number], format: (v: number) => string): Panel {
  return { title, series, yDomain, yTicks: niceTicks(yDomain[0], yDomain[1]), format };
}

function marksOf(d: ReportData): Mark[] {
  const marks: Mark[] = [];
  const ckptSteps = new Map<number, string[]>();
  // A distributed run's rounds: each sync combined the replicas and committed the round's checkpoint.
  const syncSteps = new Set<number>();
  for (const c of d.history.chunks) {
    if (c.round === undefined) continue;
    syncSteps.add(c.checkpoint.step);
    marks.push({
      step: c.checkpoint.step,
      kind: 'sync',
      label: `sync round ${c.round} (step ${c.checkpoint.step}): checkpoint ${c.checkpoint.id}`,
    });
  }
  for (const c of d.history.chunks)
    if (!syncSteps.has(c.checkpoint.step))
      ckptSteps.set(c.checkpoint.step, [...(ckptSteps.get(c.checkpoint.step) ?? []), c.checkpoint.id]);
  for (const c of d.checkpoints) {
    if (syncSteps.has(c.step)) continue;
    const ids = ckptSteps.get(c.step) ?? [];
    if (!ids.includes(c.id)) ckptSteps.set(c.step, [...ids, c.id]);
  }
  for (const [step, ids] of ckptSteps)
    marks.push({ step, kind: 'checkpoint', label: `checkpoint ${ids.join(', ')} (step ${step})` });
  for (const r of d.recoveries)
    marks.push({
      step: r.step,
      kind: 'recovery',
      label: `recovery at step ${r.step} (attempt ${r.attempt}): ${r.reason}; restored from ${r.restoredFrom ?? 'start'}`,
    });
  for (const c of d.learningRateChanges)
    marks.push({ step: c.step, kind: 'lr-change', label: `learning rate set to ${c.value} at step ${c.step}` });
  // Recoveries last, so they are drawn over the checkpoint marks at the same step.
  return marks.sort((a, b) => a.step - b.step || (a.kind === 'recovery' ? 1 : 0) - (b.kind === 'recovery' ? 1 : 0));
}

const COLORS = {
  train: '#1f77b4',
  test: '#ff7f0e',
  testAcc: '#2ca02c',
  validation: '#9467bd',
  lr: '#8c564b',
  compare: '#7f7f7f',
  compareTest: '#bcbd22',
  validationAuc: '#e377c2',
  testAuc: '#17becf',
  regularization: '#d62728',
};

/** Raw points (faint) and their smoothed curve. */
function trainSeries(name: string, color: string, raw: Array<[number, number]>, stepLevel: boolean): Series[] {
  if (!stepLevel) return [{ name: `${name} (chunk end)`, color, points: raw, line: true, markers: false }];
  return [
    { name: `${name} (raw)`, color, points: raw, line: true, markers: false, width: 1, opacity: 0.3 },
    { name: `${name} (smoothed)`, color, points: emaSmooth(raw), line: true, markers: false, width: 2 },
  ];
}

/** The compared run's smoothed curve (dashed) and test points. */
function compareSeries(d: ReportData, what: 'loss' | 'accuracy'): Series[] {
  const log = d.compare?.log;
  if (!log) return [];
  const out: Series[] = [];
  const raw = seriesOf(log, what);
  if (raw.length)
    out.push({
      name: d.compare!.runId,
      color: COLORS.compare,
      points: emaSmooth(raw),
      line: true,
      markers: false,
      width: 2,
      dash: 5,
    });
  const test = log.evals.flatMap((e) => {
    if (e.split === 'validation') return [];
    const v = what === 'loss' ? e.loss : e.accuracy;
    return typeof v === 'number' ? [[e.step, v] as [number, number]] : [];
  });
  if (test.length)
    out.push({
      name: `${d.compare!.runId} test`,
      color: COLORS.compareTest,
      points: test,
      line: true,
      markers: true,
    });
  return out;
}

const hasSteps = (log: MetricsLog | null): log is MetricsLog => Boolean(log && log.rows.length);

export function chartModel(d: ReportData): ChartModel {
  const pts = (sel: (c: ChunkRecord) => number | null | undefined): Array<[number, number]> =>
    d.history.chunks.flatMap((c) => {
      const v = sel(c);
      return typeof v === 'number' && Number.isFinite(v) ? [[c.step, v] as [number, number]] : [];
    });
  const stepLevel = hasSteps(d.log);
  const trainLoss = stepLevel ? seriesOf(d.log!, 'loss') : pts((c) => c.loss);
  // A model file's weight regularizers: their term of the training loss, on its own.
  const regLoss = stepLevel ? seriesOf(d.log!, 'regularizationLoss') : [];
  const trainAcc = stepLevel ? seriesOf(d.log!, 'accuracy') : pts((c) => c.accuracy);
  const lr = stepLevel ? seriesOf(d.log!, 'learningRate') : pts((c) => c.learningRate);
  // The validation split's points (what a run with one chooses by) and the test split's, drawn apart.
  const evalPts = (
    sel: (e: (typeof d.evals)[number]) => number | null | undefined,
    split: 'validation' | 'test' = 'test',
  ): Array<[number, number]> =>
    d.evals.flatMap((e) => {
      const v = sel(e);
      const ok = (e.split === 'validation') === (split === 'validation');
      return ok && typeof v === 'number' && Number.isFinite(v) ? [[e.step, v] as [number, number]] : [];
    });
  const testLoss = evalPts((e) => e.loss);
  const valLoss = evalPts((e) => e.loss, 'validation');
  const valAcc = evalPts((e) => e.accuracy, 'validation');
  const testAcc = evalPts((e) => e.accuracy);
  // A binary run asking for auc: drawn on the accuracy panel (both in [0, 1]).
  const valAuc = evalPts((e) => e.auc, 'validation');
  const testAuc = evalPts((e) => e.auc);
  // A regression run has no accuracy: its second panel shows the test errors instead.
  const testMae = evalPts((e) => e.mae);
  const testMse = evalPts((e) => e.mse);
  const regression = testMae.length > 0 && testAcc.length === 0;
  // The compared run first: drawn underneath this run's curves.
  const lossSeries = [
    ...compareSeries(d, 'loss'),
    ...trainSeries('train loss', COLORS.train, trainLoss, stepLevel),
    ...(regLoss.length
      ? [{ name: 'regularization loss', color: COLORS.regularization, points: regLoss, line: true, markers: false }]
      : []),
    ...(valLoss.length
      ? [{ name: 'validation loss', color: COLORS.validation, points: valLoss, line: true, markers: true }]
      : []),
    { name: 'test loss', color: COLORS.test, points: testLoss, line: true, markers: true },
  ];
  const accSeries = [
    ...compareSeries(d, 'accuracy'),
    ...trainSeries('train accuracy', COLORS.train, trainAcc, stepLevel),
    ...(valAcc.length
      ? [{ name: 'validation accuracy', color: COLORS.validation, points: valAcc, line: true, markers: true }]
      : []),
    { name: 'test accuracy', color: COLORS.testAcc, points: testAcc, line: true, markers: true },
    ...(valAuc.length
      ? [{ name: 'validation auc', color: COLORS.validationAuc, points: valAuc, line: true, markers: true }]
      : []),
    ...(testAuc.length
      ? [{ name: 'test auc', color: COLORS.testAuc, points: testAuc, line: true, markers: true }]
      : []),
  ];
  const yValues = (series: Series[]) => series.flatMap((x) => x.points.map((p) => p[1]));
  const xMax = Math.max(d.totalSteps, d.compare?.totalSteps ?? 0);
  return {
    xMax,
    xTicks: niceTicks(0, xMax).filter((v) => Number.isInteger(v)),
    marks: marksOf(d),
    panels: [
      { ...panel('loss', lossSeries, domainOf(yValues(lossSeries), true), fmtNum), legendMarks: true },
      regression
        ? panel(
            'test error',
            [
              { name: 'test mae', color: '#2ca02c', points: testMae, line: true, markers: true },
              { name: 'test mse', color: '#d62728', points: testMse, line: true, markers: true },
            ],
            domainOf(
              [...testMae, ...testMse].map((p) => p[1]),
              true,
            ),
            fmtNum,
          )
        : panel('accuracy', accSeries, [0, 1], fmtNum),
      panel(
        'learning rate',
        [
          {
            name: stepLevel ? 'learning rate' : 'learning rate (next step)',
            color: COLORS.lr,
            points: lr,
            line: true,
            markers: !stepLevel,
          },
        ],
        domainOf(
          lr.map((p) => p[1]),
          true,
        ),
        fmtLr,
      ),
    ],
  };
}
