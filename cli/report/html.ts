// The report page: one self-contained HTML file (inline SVG and CSS, nothing fetched) with the run's summary,
// its curves, recoveries, learning-rate changes, checkpoints, chunks and spec.
import { EXTRA_METRICS } from '../../spec/catalog';
import { datasetLabel, modelLabel } from '../../spec/labels';
import { fmt } from '../common';
import { epochOfCompleted, evaluatedHere } from '../epoch';
import { SMOOTHING, type ChartModel } from './chart';
import { currentStep, type ReportData } from './data';
import { esc, panelSvg, SVG_CSS } from './svg';

const CSS = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px; max-width: 1100px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #555; margin: 0 0 16px; }
.summary td { padding: 2px 14px 2px 0; } .summary td:first-child { color: #555; }
table.data { border-collapse: collapse; font-size: 13px; }
table.data th, table.data td { border-bottom: 1px solid #e3e5e8; padding: 3px 10px 3px 0; text-align: left; white-space: nowrap; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #d62728; font-weight: 600; } .ok { color: #2ca02c; }
pre { background: #f6f8fa; padding: 10px; border-radius: 4px; overflow-x: auto; font-size: 12.5px; }
svg.chart { display: block; margin: 6px 0 10px; }
code { font-size: 12.5px; }
${SVG_CSS}`;

/** For element content, where quotes need no escaping (keeps the spec JSON readable in the source). */
const escText = (s: unknown) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

type Cell = { v: unknown; num?: boolean; cls?: string };

function table(headers: string[], rows: Cell[][], empty: string): string {
  if (!rows.length) return `<p class="meta">${esc(empty)}</p>`;
  return (
    `<table class="data"><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>\n` +
    rows
      .map(
        (r) =>
          `<tr>${r.map((c) => `<td${c.num ? ' class="num"' : c.cls ? ` class="${c.cls}"` : ''}>${esc(c.v)}</td>`).join('')}</tr>`,
      )
      .join('\n') +
    `\n</tbody></table>`
  );
}

function summaryRows(d: ReportData): Array<[string, string]> {
  const v = d.view;
  const p = v.progress;
  const res = v.result;
  const last = d.history.chunks[d.history.chunks.length - 1];
  const lastTest = [...d.evals].reverse().find((e) => e.split !== 'validation');
  const lastVal = [...d.evals].reverse().find((e) => e.split === 'validation');
  const describe = (e: (typeof d.evals)[number] | undefined) =>
    e
      ? `end of epoch ${e.epoch + 1}, step ${e.step}: ` +
        (e.mae !== undefined ? `mae ${fmt(e.mae)}, mse ${fmt(e.mse ?? null)}` : `accuracy ${fmt(e.accuracy)}`) +
        EXTRA_METRICS.map((m) => (e[m] !== undefined ? `, ${m} ${fmt(e[m] ?? null)}` : '')).join('') +
        `, loss ${fmt(e.loss)}`
      : '-';
  return [
    ['status', `${v.status}${p ? ` (${p.status})` : ''}${v.failure ? `: ${v.failure}` : ''}`],
    ['model', d.spec ? `${modelLabel(d.spec.model)} on ${datasetLabel(d.spec.dataset)}` : '-'],
    ['steps', `${currentStep(d)} / ${d.totalSteps}`],
    ['final test accuracy / loss', res ? `${fmt(res.accuracy)} / ${fmt(res.loss)}` : '-'],
    ...(lastVal ? [['last validation evaluation (what choices used)', describe(lastVal)] as [string, string]] : []),
    ['last test evaluation' + (lastVal ? ' (never used for a choice)' : ''), describe(lastTest)],
    ['weights sha256', res?.weightsSha256 ?? '-'],
    ['backend', res?.backend ?? p?.backend ?? last?.backend ?? '-'],
    ['chunks in history', `${d.history.chunks.length} over ${d.history.executions.length} execution(s)`],
    ['recoveries', String(d.recoveries.length)],
  ];
}

/** Where the training curves come from, said on the page. */
function curvesNote(d: ReportData): string {
  const log = d.log;
  const compare = d.compare
    ? d.compare.log
      ? ` Run ${d.compare.runId} is drawn dashed in grey for comparison.`
      : ` Run ${d.compare.runId} could not be compared: ${d.compare.error ?? 'it has no metrics log'}.`
    : '';
  if (!log || !log.rows.length)
    return (
      `Training loss and accuracy are those of the last batch of each chunk (from the chunk summaries in the workflow ` +
      `history${d.logError ? `; the metrics log could not be read: ${d.logError}` : '; this run has no metrics log'}).` +
      compare
    );
  const buckets = log.rows.some((r) => r.count > 1);
  return (
    `Training loss, accuracy and learning rate at every step from the run's metrics log (${log.rows.length} points` +
    `${buckets ? ', later steps averaged in buckets' : ''}): raw values faint, the bold line an exponential moving ` +
    `average (smoothing ${SMOOTHING}).` +
    (log.gapBefore !== null ? ` The log misses the steps before ${log.gapBefore}.` : '') +
    compare
  );
}

export function renderHtml(d: ReportData, model: ChartModel): string {
  const charts = model.panels.map((panel) => panelSvg(model, panel)).join('\n');
  const ckRows = d.checkpoints.map((c): Cell[] => [
    { v: c.id },
    { v: c.step, num: true },
    { v: epochOfCompleted(c.epoch, c.step > 0 && evaluatedHere(c.metrics)), num: true },
    { v: c.createdAt.replace('T', ' ').slice(0, 19) },
    { v: (c.sizeBytes / 1e6).toFixed(2) + ' MB', num: true },
    { v: fmt(c.metrics.loss), num: true },
    { v: fmt(c.metrics.accuracy, 3), num: true },
    { v: c.metrics.valAccuracy !== undefined ? fmt(c.metrics.valAccuracy) : '-', num: true },
    { v: c.metrics.testAccuracy !== undefined ? fmt(c.metrics.testAccuracy) : '-', num: true },
    { v: fmt(c.metrics.learningRate, 6), num: true },
    { v: c.pinned ? 'pinned' : '' },
    c.valid === false
      ? { v: `DAMAGED ${c.problem ?? ''}`, cls: 'bad' }
      : { v: c.valid ? 'verified' : 'not verified', cls: c.valid ? 'ok' : '' },
  ]);
  const chunkRows = d.history.chunks.map((c): Cell[] => [
    { v: `${c.fromStep}..${c.step}${c.round !== undefined ? ` (round ${c.round})` : ''}` },
    {
      v: epochOfCompleted(
        c.epoch,
        (c.evals ?? []).some((e) => e.step === c.step),
      ),
      num: true,
    },
    { v: fmt(c.loss), num: true },
    { v: fmt(c.accuracy, 3), num: true },
    { v: fmt(c.learningRate, 6), num: true },
    { v: c.source },
    { v: Math.round(c.samplesPerSec), num: true },
    { v: c.checkpoint.id },
    { v: c.recovery ? `recovered (attempt ${c.recovery.attempt})` : c.cut ? 'cut' : '', cls: c.recovery ? 'bad' : '' },
    { v: c.completedAt?.replace('T', ' ').slice(0, 19) ?? '' },
  ]);
  const recRows = d.recoveries.map((r): Cell[] => [
    { v: r.step, num: true },
    { v: r.attempt, num: true },
    { v: r.requested ?? '-' },
    { v: r.restoredFrom ?? '-' },
    { v: r.reason },
  ]);
  const lrRows = d.learningRateChanges.map((c): Cell[] => [
    { v: c.step, num: true },
    { v: c.value, num: true },
  ]);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>durable-train report: ${esc(d.runId)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>Run ${esc(d.runId)}</h1>
<p class="meta">durable-train report generated ${esc(d.generatedAt)}</p>
<table class="summary">${summaryRows(d)
    .map(([k, val]) => `<tr><td>${esc(k)}</td><td>${esc(val)}</td></tr>`)
    .join('')}</table>

<h2>Curves</h2>
<p class="meta">${esc(curvesNote(d))} Test points are the epoch-end evaluations. Dashed grey lines mark
checkpoints, red lines the steps where a chunk recovered from a failure; hover for details. Epochs are numbered from
1.</p>
${charts}
${d.checkpointsError ? `<p class="bad">checkpoints could not be read: ${esc(d.checkpointsError)}</p>` : ''}
<h2>Recoveries</h2>
${table(['step', 'attempt', 'requested', 'restored from', 'reason'], recRows, 'none: the run never had to recover')}

<h2>Learning-rate changes</h2>
${table(['step', 'value'], lrRows, d.view.progress ? 'none' : 'unknown (no worker answered the progress query)')}

<h2>Checkpoints</h2>
${table(['id', 'step', 'epoch', 'created', 'size', 'loss', 'accuracy', 'validation accuracy', 'test accuracy', 'learning rate', '', 'integrity'], ckRows, d.checkpointsError ? 'unavailable' : 'no checkpoints stored')}

<h2>Chunks</h2>
${table(['steps', 'epoch', 'loss', 'accuracy', 'learning rate', 'source', 'samples/s', 'checkpoint', '', 'completed'], chunkRows, 'no chunk has completed yet')}

<h2>Spec</h2>
<pre>${escText(d.spec ? JSON.stringify(d.spec, null, 2) : 'no spec memo')}</pre>
</body>
</html>
`;
}
