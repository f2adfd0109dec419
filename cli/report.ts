// `report RUN_ID --out FILE.html [--png FILE.png]`: one self-contained page (inline SVG, no network) with
// the run's loss, accuracy and learning-rate curves over steps, its checkpoints and recoveries, the spec and
// the checkpoint table; optionally the same curves as a PNG.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { CheckpointSummary } from '../checkpoint';
import type { ChunkSummary, EvalResult, Recovery } from '../activities/types';
import type { RunSpec } from '../spec';
import { managerForRun } from './checkpoints';
import { CliError, fmt, viewRun, type Out, type RunView } from './common';
import { encodePng, hexColor, Raster } from './png';

export const REPORT_HELP = `report RUN_ID --out FILE.html [--png FILE.png] [--verify] [--storage URL]
    a self-contained HTML page (inline SVG, nothing fetched): training loss/accuracy per chunk and test
    evaluations over steps, learning rate, checkpoint and recovery marks, chunks, checkpoints, spec;
    --png also draws the curves into a PNG; --verify re-hashes the checkpoints for the table`;

// ---------------------------------------------------------------------------------------------------------
// Data: chunk summaries from the workflow history (across continue-as-new), checkpoints from storage.

export interface ChunkRecord extends ChunkSummary {
  /** The workflow execution (Temporal run id) that ran the chunk. */
  execution: string;
  completedAt: string | null;
}

export interface RunHistory {
  executions: string[];
  chunks: ChunkRecord[];
}

type Timestamp = { seconds?: unknown; nanos?: number | null } | null | undefined;
function isoTime(ts: Timestamp): string | null {
  if (!ts || ts.seconds === undefined || ts.seconds === null) return null;
  const ms = Number(String(ts.seconds)) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

/** Every trainChunk result of the run: the latest execution and those it continued from, oldest first. */
export async function fetchRunHistory(client: Client, runId: string, latestExecution: string): Promise<RunHistory> {
  const executions: string[] = [];
  const perExecution: ChunkRecord[][] = [];
  const seen = new Set<string>();
  let execution: string | undefined = latestExecution;
  while (execution && !seen.has(execution)) {
    seen.add(execution);
    const history = await client.workflow.getHandle(runId, execution).fetchHistory();
    const scheduled = new Map<string, string>();
    const chunks: ChunkRecord[] = [];
    let previous: string | undefined;
    for (const ev of history.events ?? []) {
      const started = ev.workflowExecutionStartedEventAttributes;
      if (started) previous = started.continuedExecutionRunId || undefined;
      const sch = ev.activityTaskScheduledEventAttributes;
      if (sch) scheduled.set(String(ev.eventId), sch.activityType?.name ?? '');
      const done = ev.activityTaskCompletedEventAttributes;
      if (done && scheduled.get(String(done.scheduledEventId)) === 'trainChunk') {
        const payload = done.result?.payloads?.[0];
        if (!payload) continue;
        const s = defaultPayloadConverter.fromPayload(payload as never) as ChunkSummary;
        if (s && typeof s.step === 'number') chunks.push({ ...s, execution, completedAt: isoTime(ev.eventTime) });
      }
    }
    executions.unshift(execution);
    perExecution.unshift(chunks);
    execution = previous;
  }
  return { executions, chunks: perExecution.flat() };
}

export interface ReportData {
  runId: string;
  generatedAt: string;
  view: RunView;
  spec: RunSpec | null;
  history: RunHistory;
  evals: EvalResult[];
  checkpoints: CheckpointSummary[];
  checkpointsError: string | null;
  recoveries: Array<Recovery & { step: number }>;
  learningRateChanges: Array<{ step: number; value: number }>;
  totalSteps: number;
}

async function collect(
  client: Client,
  runId: string,
  opts: { storage?: string; verify?: boolean },
): Promise<ReportData> {
  const view = await viewRun(client, runId);
  const desc = await client.workflow.getHandle(runId).describe();
  const history = await fetchRunHistory(client, runId, desc.runId);

  let checkpoints: CheckpointSummary[] = [];
  let checkpointsError: string | null = null;
  const evals = new Map<number, EvalResult>();
  try {
    const manager = await managerForRun(client, runId, opts.storage);
    checkpoints = await manager.list({ verify: opts.verify });
    // The newest manifest holds every evaluation of the run, also those of executions before a restart.
    const newest = checkpoints.find((c) => c.valid !== false);
    if (newest) {
      const state = (await manager.readManifest(newest.id)).state as { metrics?: { evals?: EvalResult[] } };
      for (const e of state.metrics?.evals ?? []) evals.set(e.step, e);
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    checkpointsError = (err as Error).message;
  }
  for (const c of history.chunks) for (const e of c.evals ?? []) evals.set(e.step, e);
  if (view.progress?.lastEval) evals.set(view.progress.lastEval.step, view.progress.lastEval);

  const recoveries: ReportData['recoveries'] = history.chunks
    .filter((c) => c.recovery)
    .map((c) => ({ ...c.recovery!, step: c.fromStep }));
  for (const r of view.progress?.recoveries ?? [])
    if (!recoveries.some((x) => x.step === r.step && x.attempt === r.attempt && x.reason === r.reason))
      recoveries.push(r);
  recoveries.sort((a, b) => a.step - b.step);

  const lastChunk = history.chunks[history.chunks.length - 1];
  const totalSteps = Math.max(
    view.progress?.totalSteps ?? 0,
    view.result?.totalSteps ?? 0,
    lastChunk?.totalSteps ?? 0,
    ...checkpoints.map((c) => c.step),
    1,
  );
  return {
    runId,
    generatedAt: new Date().toISOString(),
    view,
    spec: view.spec,
    history,
    evals: [...evals.values()].sort((a, b) => a.step - b.step),
    checkpoints,
    checkpointsError,
    recoveries,
    learningRateChanges: view.progress?.learningRateChanges ?? [],
    totalSteps,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Charts: one model, drawn twice (SVG for the page, raster for the PNG).

interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
  markers: boolean;
  line: boolean;
}

interface Panel {
  title: string;
  series: Series[];
  yDomain: [number, number];
  format: (v: number) => string;
}

type MarkKind = 'checkpoint' | 'recovery' | 'lr-change';
interface Mark {
  step: number;
  kind: MarkKind;
  label: string;
}

const MARK_STYLE: Record<MarkKind, { color: string; dash: number; width: number; legend: string }> = {
  checkpoint: { color: '#9aa4b2', dash: 3, width: 1, legend: 'checkpoint' },
  recovery: { color: '#d62728', dash: 0, width: 2, legend: 'recovery' },
  'lr-change': { color: '#9467bd', dash: 6, width: 1, legend: 'set-lr' },
};

const W = 900;
const PANEL_H = 240;
const M = { l: 72, r: 20, t: 34, b: 40 };
const PNG_CAPTION_H = 26;

export interface ChartModel {
  xMax: number;
  panels: Panel[];
  marks: Mark[];
}

function niceTicks(lo: number, hi: number, count = 5): number[] {
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

export function chartModel(d: ReportData): ChartModel {
  const chunks = d.history.chunks;
  const pts = (sel: (c: ChunkRecord) => number | null | undefined): Array<[number, number]> =>
    chunks.flatMap((c) => {
      const v = sel(c);
      return typeof v === 'number' && Number.isFinite(v) ? [[c.step, v] as [number, number]] : [];
    });
  const trainLoss = pts((c) => c.loss);
  const trainAcc = pts((c) => c.accuracy);
  const lr = pts((c) => c.learningRate);
  const testLoss = d.evals.map((e) => [e.step, e.loss] as [number, number]);
  const testAcc = d.evals.map((e) => [e.step, e.accuracy] as [number, number]);
  const marks: Mark[] = [];
  const ckptSteps = new Map<number, string[]>();
  for (const c of chunks)
    ckptSteps.set(c.checkpoint.step, [...(ckptSteps.get(c.checkpoint.step) ?? []), c.checkpoint.id]);
  for (const c of d.checkpoints) {
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
  marks.sort((a, b) => a.step - b.step || (a.kind === 'recovery' ? 1 : 0) - (b.kind === 'recovery' ? 1 : 0));
  return {
    xMax: d.totalSteps,
    marks,
    panels: [
      {
        title: 'loss',
        series: [
          { name: 'train loss (chunk end)', color: '#1f77b4', points: trainLoss, line: true, markers: false },
          { name: 'test loss', color: '#ff7f0e', points: testLoss, line: true, markers: true },
        ],
        yDomain: domainOf(
          [...trainLoss, ...testLoss].map((p) => p[1]),
          true,
        ),
        format: fmtNum,
      },
      {
        title: 'accuracy',
        series: [
          { name: 'train accuracy (chunk end)', color: '#1f77b4', points: trainAcc, line: true, markers: false },
          { name: 'test accuracy', color: '#2ca02c', points: testAcc, line: true, markers: true },
        ],
        yDomain: [0, 1],
        format: fmtNum,
      },
      {
        title: 'learning rate',
        series: [{ name: 'learning rate (next step)', color: '#8c564b', points: lr, line: true, markers: true }],
        yDomain: domainOf(
          lr.map((p) => p[1]),
          true,
        ),
        format: fmtLr,
      },
    ],
  };
}

function scales(model: ChartModel, panel: Panel) {
  const pw = W - M.l - M.r;
  const ph = PANEL_H - M.t - M.b;
  const [y0, y1] = panel.yDomain;
  return {
    x: (step: number) => M.l + (model.xMax > 0 ? (step / model.xMax) * pw : 0),
    y: (v: number) => M.t + (1 - (v - y0) / (y1 - y0 || 1)) * ph,
    pw,
    ph,
  };
}

const esc = (s: unknown) =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** For element content, where quotes need no escaping (keeps the spec JSON readable in the source). */
const escText = (s: unknown) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const n2 = (v: number) => (Math.round(v * 100) / 100).toString();

function panelSvg(model: ChartModel, panel: Panel): string {
  const s = scales(model, panel);
  const parts: string[] = [];
  parts.push(
    `<svg class="chart" width="${W}" height="${PANEL_H}" viewBox="0 0 ${W} ${PANEL_H}" role="img" aria-label="${esc(panel.title)}">`,
  );
  parts.push(`<rect x="0" y="0" width="${W}" height="${PANEL_H}" fill="#fff"/>`);
  parts.push(`<text x="${M.l}" y="20" class="title">${esc(panel.title)}</text>`);
  for (const t of niceTicks(panel.yDomain[0], panel.yDomain[1])) {
    const y = n2(s.y(t));
    parts.push(`<line x1="${M.l}" x2="${M.l + s.pw}" y1="${y}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${M.l - 6}" y="${y}" class="ytick">${esc(panel.format(t))}</text>`);
  }
  for (const t of niceTicks(0, model.xMax).filter((v) => Number.isInteger(v))) {
    const x = n2(s.x(t));
    parts.push(`<line x1="${x}" x2="${x}" y1="${M.t + s.ph}" y2="${M.t + s.ph + 4}" class="axis"/>`);
    parts.push(`<text x="${x}" y="${M.t + s.ph + 17}" class="xtick">${t}</text>`);
  }
  parts.push(`<text x="${M.l + s.pw}" y="${PANEL_H - 6}" class="xlabel">step</text>`);
  parts.push(`<rect x="${M.l}" y="${M.t}" width="${s.pw}" height="${s.ph}" class="frame"/>`);
  for (const m of model.marks) {
    const st = MARK_STYLE[m.kind];
    const x = n2(s.x(m.step));
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${M.t}" y2="${M.t + s.ph}" stroke="${st.color}" stroke-width="${st.width}"` +
        `${st.dash ? ` stroke-dasharray="${st.dash} ${st.dash}"` : ''} class="mark ${m.kind}"><title>${esc(m.label)}</title></line>`,
    );
  }
  for (const ser of panel.series) {
    if (!ser.points.length) continue;
    const pts = ser.points.map(([x, y]) => `${n2(s.x(x))},${n2(s.y(y))}`);
    if (ser.line)
      parts.push(
        `<path d="M${pts.join(' L')}" fill="none" stroke="${ser.color}" stroke-width="1.8" stroke-linejoin="round"><title>${esc(ser.name)}</title></path>`,
      );
    if (ser.markers)
      for (const [x, y] of ser.points)
        parts.push(
          `<circle cx="${n2(s.x(x))}" cy="${n2(s.y(y))}" r="3" fill="${ser.color}"><title>${esc(`${ser.name} at step ${x}: ${panel.format(y)}`)}</title></circle>`,
        );
  }
  // Legend, right-aligned above the plot.
  const entries = [
    ...panel.series.map((x) => ({ label: x.name, color: x.color, dash: 0 })),
    ...[...new Set(model.marks.map((m) => m.kind))].map((k) => ({
      label: MARK_STYLE[k].legend,
      color: MARK_STYLE[k].color,
      dash: MARK_STYLE[k].dash,
    })),
  ];
  let lx = W - M.r;
  for (const e of [...entries].reverse()) {
    const w = 24 + e.label.length * 6.2;
    lx -= w + 10;
    parts.push(
      `<line x1="${n2(lx)}" x2="${n2(lx + 18)}" y1="16" y2="16" stroke="${e.color}" stroke-width="2.5"${e.dash ? ` stroke-dasharray="${e.dash} ${e.dash}"` : ''}/>`,
    );
    parts.push(`<text x="${n2(lx + 22)}" y="20" class="legend">${esc(e.label)}</text>`);
  }
  if (!panel.series.some((x) => x.points.length))
    parts.push(`<text x="${M.l + s.pw / 2}" y="${M.t + s.ph / 2}" class="empty">no data yet</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/** The curves as a PNG: a caption, then the same panels stacked, drawn with the tiny rasterizer. */
export function chartPng(model: ChartModel, caption: string): Buffer {
  const top = PNG_CAPTION_H;
  const r = new Raster(W, top + PANEL_H * model.panels.length);
  const ink = hexColor('#222222');
  const grid = hexColor('#e6e8eb');
  const frame = hexColor('#888888');
  r.text(M.l, 8, caption, ink, 2);
  const markKinds = [...new Set(model.marks.map((m) => m.kind))];
  model.panels.forEach((panel, i) => {
    const oy = top + i * PANEL_H;
    const s = scales(model, panel);
    const y = (v: number) => oy + s.y(v);
    r.text(M.l, oy + 10, panel.title, ink, 2);
    for (const t of niceTicks(panel.yDomain[0], panel.yDomain[1])) {
      r.hline(M.l, M.l + s.pw, y(t), grid);
      const label = panel.format(t);
      r.text(M.l - 6 - Raster.textWidth(label, 2), y(t) - 4, label, ink, 2);
    }
    for (const t of niceTicks(0, model.xMax).filter((v) => Number.isInteger(v))) {
      r.vline(s.x(t), oy + M.t + s.ph, oy + M.t + s.ph + 4, frame);
      const label = String(t);
      r.text(s.x(t) - Raster.textWidth(label, 2) / 2, oy + M.t + s.ph + 8, label, ink, 2);
    }
    r.text(M.l + s.pw - Raster.textWidth('step', 2), oy + PANEL_H - 14, 'step', ink, 2);
    for (const m of model.marks) {
      const st = MARK_STYLE[m.kind];
      r.vline(s.x(m.step), oy + M.t, oy + M.t + s.ph, hexColor(st.color), st.dash, st.width);
    }
    for (const ser of panel.series) {
      const c = hexColor(ser.color);
      const pts = ser.points.map(([x, v]) => [s.x(x), y(v)] as [number, number]);
      if (ser.line) r.polyline(pts, c, 2);
      if (ser.markers) for (const [px, py] of pts) r.dot(px, py, 2.5, c);
    }
    // Frame last, so curves at the edges do not hide it.
    r.hline(M.l, M.l + s.pw, oy + M.t, frame);
    r.hline(M.l, M.l + s.pw, oy + M.t + s.ph, frame);
    r.vline(M.l, oy + M.t, oy + M.t + s.ph, frame);
    r.vline(M.l + s.pw, oy + M.t, oy + M.t + s.ph, frame);
    const entries = [
      ...panel.series.map((e) => ({ label: e.name, color: e.color })),
      ...markKinds.map((k) => ({ label: MARK_STYLE[k].legend, color: MARK_STYLE[k].color })),
    ];
    let lx = W - M.r;
    for (const e of entries.reverse()) {
      lx -= 22 + Raster.textWidth(e.label, 2) + 12;
      r.line(lx, oy + 16, lx + 16, oy + 16, hexColor(e.color), 2.5);
      r.text(lx + 20, oy + 12, e.label, ink, 2);
    }
    if (!panel.series.some((e) => e.points.length))
      r.text(M.l + s.pw / 2 - Raster.textWidth('no data yet', 2) / 2, oy + M.t + s.ph / 2, 'no data yet', frame, 2);
  });
  return encodePng(r);
}

// ---------------------------------------------------------------------------------------------------------
// The page.

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
svg .title { font-size: 15px; font-weight: 600; } svg .legend { font-size: 11px; }
svg .ytick { font-size: 11px; text-anchor: end; dominant-baseline: middle; } svg .xtick { font-size: 11px; text-anchor: middle; }
svg .xlabel { font-size: 11px; text-anchor: end; fill: #555; } svg .empty { font-size: 13px; fill: #888; text-anchor: middle; }
svg .grid { stroke: #eceef1; } svg .axis { stroke: #888; } svg .frame { fill: none; stroke: #aaa; }
code { font-size: 12.5px; }
`;

function table(
  headers: string[],
  rows: Array<Array<{ v: unknown; num?: boolean; cls?: string }>>,
  empty: string,
): string {
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

export function renderHtml(d: ReportData, model: ChartModel): string {
  const v = d.view;
  const p = v.progress;
  const res = v.result;
  const last = d.history.chunks[d.history.chunks.length - 1];
  const step = res?.step ?? p?.step ?? last?.step ?? 0;
  const summary: Array<[string, string]> = [
    ['status', `${v.status}${p ? ` (${p.status})` : ''}${v.failure ? `: ${v.failure}` : ''}`],
    ['model', d.spec ? `${d.spec.model} on ${d.spec.dataset.name}` : '-'],
    ['steps', `${step} / ${d.totalSteps}`],
    ['final test accuracy / loss', res ? `${fmt(res.accuracy)} / ${fmt(res.loss)}` : '-'],
    [
      'last test evaluation',
      d.evals.length
        ? (() => {
            const e = d.evals[d.evals.length - 1];
            return `epoch ${e.epoch}, step ${e.step}: accuracy ${fmt(e.accuracy)}, loss ${fmt(e.loss)}`;
          })()
        : '-',
    ],
    ['weights sha256', res?.weightsSha256 ?? '-'],
    ['backend', res?.backend ?? p?.backend ?? last?.backend ?? '-'],
    ['chunks in history', `${d.history.chunks.length} over ${d.history.executions.length} execution(s)`],
    ['recoveries', String(d.recoveries.length)],
  ];
  const charts = model.panels.map((panel) => panelSvg(model, panel)).join('\n');
  const ckRows = d.checkpoints.map((c) => [
    { v: c.id },
    { v: c.step, num: true },
    { v: c.epoch, num: true },
    { v: c.createdAt.replace('T', ' ').slice(0, 19) },
    { v: (c.sizeBytes / 1e6).toFixed(2) + ' MB', num: true },
    { v: fmt(c.metrics.loss), num: true },
    { v: fmt(c.metrics.accuracy, 3), num: true },
    { v: c.metrics.testAccuracy !== undefined ? fmt(c.metrics.testAccuracy) : '-', num: true },
    { v: fmt(c.metrics.learningRate, 6), num: true },
    { v: c.pinned ? 'pinned' : '' },
    c.valid === false
      ? { v: `DAMAGED ${c.problem ?? ''}`, cls: 'bad' }
      : { v: c.valid ? 'verified' : 'not verified', cls: c.valid ? 'ok' : '' },
  ]);
  const chunkRows = d.history.chunks.map((c) => [
    { v: `${c.fromStep}..${c.step}` },
    { v: c.epoch, num: true },
    { v: fmt(c.loss), num: true },
    { v: fmt(c.accuracy, 3), num: true },
    { v: fmt(c.learningRate, 6), num: true },
    { v: c.source },
    { v: Math.round(c.samplesPerSec), num: true },
    { v: c.checkpoint.id },
    { v: c.recovery ? `recovered (attempt ${c.recovery.attempt})` : c.cut ? 'cut' : '', cls: c.recovery ? 'bad' : '' },
    { v: c.completedAt?.replace('T', ' ').slice(0, 19) ?? '' },
  ]);
  const recRows = d.recoveries.map((r) => [
    { v: r.step, num: true },
    { v: r.attempt, num: true },
    { v: r.requested ?? '-' },
    { v: r.restoredFrom ?? '-' },
    { v: r.reason },
  ]);
  const lrRows = d.learningRateChanges.map((c) => [
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
<table class="summary">${summary.map(([k, val]) => `<tr><td>${esc(k)}</td><td>${esc(val)}</td></tr>`).join('')}</table>

<h2>Curves</h2>
<p class="meta">Training loss and accuracy are those of the last batch of each chunk (from the chunk summaries in the
workflow history); test points are the epoch-end evaluations. Dashed grey lines mark checkpoints, red lines the steps
where a chunk recovered from a failure; hover for details.</p>
${charts}
${d.checkpointsError ? `<p class="bad">checkpoints could not be read: ${esc(d.checkpointsError)}</p>` : ''}
<h2>Recoveries</h2>
${table(['step', 'attempt', 'requested', 'restored from', 'reason'], recRows, 'none: the run never had to recover')}

<h2>Learning-rate changes</h2>
${table(['step', 'value'], lrRows, p ? 'none' : 'unknown (no worker answered the progress query)')}

<h2>Checkpoints</h2>
${table(['id', 'step', 'epoch', 'created', 'size', 'loss', 'accuracy', 'test accuracy', 'learning rate', '', 'integrity'], ckRows, d.checkpointsError ? 'unavailable' : 'no checkpoints stored')}

<h2>Chunks</h2>
${table(['steps', 'epoch', 'loss', 'accuracy', 'learning rate', 'source', 'samples/s', 'checkpoint', '', 'completed'], chunkRows, 'no chunk has completed yet')}

<h2>Spec</h2>
<pre>${escText(d.spec ? JSON.stringify(d.spec, null, 2) : 'no spec memo')}</pre>
</body>
</html>
`;
}

function writeAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new CliError(`report: cannot write ${file}: ${(err as Error).message}`, 1);
  }
}

export async function reportCommand(
  client: Client,
  out: Out,
  opts: { runId: string; out?: string; png?: string; storage?: string; verify?: boolean },
): Promise<void> {
  if (!opts.out) throw new CliError(`report: --out FILE.html is required\n\nusage: ${REPORT_HELP}`, 2);
  const html = path.resolve(opts.out);
  const png = opts.png ? path.resolve(opts.png) : null;
  const d = await collect(client, opts.runId, { storage: opts.storage, verify: opts.verify });
  if (d.checkpointsError)
    process.stderr.write(`durable-train: report: checkpoints unavailable: ${d.checkpointsError}\n`);
  const model = chartModel(d);
  const page = renderHtml(d, model);
  const step = d.view.result?.step ?? d.view.progress?.step ?? d.history.chunks[d.history.chunks.length - 1]?.step ?? 0;
  const image = png
    ? chartPng(model, `durable-train ${d.runId}: step ${step}/${d.totalSteps}, ${d.view.status}`)
    : null;
  writeAtomic(html, page);
  if (png && image) writeAtomic(png, image);
  const summary = {
    runId: d.runId,
    status: d.view.status,
    out: html,
    png,
    executions: d.history.executions.length,
    chunks: d.history.chunks.length,
    evals: d.evals.length,
    checkpoints: d.checkpoints.map((c) => c.id),
    checkpointsError: d.checkpointsError,
    recoveries: d.recoveries.length,
    learningRateChanges: d.learningRateChanges.length,
  };
  out.emit(summary, () =>
    [
      `report for ${d.runId} (${d.view.status}): ${d.history.chunks.length} chunks over ${summary.executions} execution(s), ` +
        `${d.evals.length} evaluations, ${d.checkpoints.length} checkpoints, ${d.recoveries.length} recoveries`,
      `  ${html}`,
      ...(png ? [`  ${png}`] : []),
    ].join('\n'),
  );
}
