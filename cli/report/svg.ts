// The one SVG renderer of the chart model: each panel is an <svg> element, inlined as is in the HTML page and
// nested under a caption in the standalone document that the PNG is rendered from.
import { MARK_STYLE, type ChartModel, type Panel } from './chart';

export const WIDTH = 900;
export const PANEL_HEIGHT = 240;
export const CAPTION_HEIGHT = 26;
const M = { l: 72, r: 20, t: 34, b: 40 };

/** Styles of the chart elements, for the page's <style> and the standalone document's alike. */
export const SVG_CSS = `
.chart .title { font-size: 15px; font-weight: 600; } .chart .legend { font-size: 11px; }
.chart .ytick { font-size: 11px; text-anchor: end; dominant-baseline: middle; }
.chart .xtick { font-size: 11px; text-anchor: middle; }
.chart .xlabel { font-size: 11px; text-anchor: end; fill: #555; }
.chart .empty { font-size: 13px; fill: #888; text-anchor: middle; }
.chart .grid { stroke: #eceef1; } .chart .axis { stroke: #888; } .chart .frame { fill: none; stroke: #aaa; }
`;

export const esc = (s: unknown) =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const n2 = (v: number) => (Math.round(v * 100) / 100).toString();

function scales(model: ChartModel, panel: Panel) {
  const pw = WIDTH - M.l - M.r;
  const ph = PANEL_HEIGHT - M.t - M.b;
  const [y0, y1] = panel.yDomain;
  return {
    x: (step: number) => M.l + (model.xMax > 0 ? (step / model.xMax) * pw : 0),
    y: (v: number) => M.t + (1 - (v - y0) / (y1 - y0 || 1)) * ph,
    pw,
    ph,
  };
}

/** One panel as an <svg class="chart"> element; `y` places it inside an enclosing SVG document. */
export function panelSvg(model: ChartModel, panel: Panel, y?: number): string {
  const s = scales(model, panel);
  const crisp = 'shape-rendering="crispEdges"';
  const parts: string[] = [];
  parts.push(
    `<svg class="chart"${y === undefined ? '' : ` x="0" y="${y}"`} width="${WIDTH}" height="${PANEL_HEIGHT}" ` +
      `viewBox="0 0 ${WIDTH} ${PANEL_HEIGHT}" role="img" aria-label="${esc(panel.title)}">`,
  );
  parts.push(`<rect x="0" y="0" width="${WIDTH}" height="${PANEL_HEIGHT}" fill="#fff"/>`);
  parts.push(`<text x="${M.l}" y="20" class="title">${esc(panel.title)}</text>`);
  for (const t of panel.yTicks) {
    const ty = n2(s.y(t));
    parts.push(`<line x1="${M.l}" x2="${M.l + s.pw}" y1="${ty}" y2="${ty}" class="grid" ${crisp}/>`);
    parts.push(`<text x="${M.l - 6}" y="${ty}" class="ytick">${esc(panel.format(t))}</text>`);
  }
  for (const t of model.xTicks) {
    const x = n2(s.x(t));
    parts.push(`<line x1="${x}" x2="${x}" y1="${M.t + s.ph}" y2="${M.t + s.ph + 4}" class="axis" ${crisp}/>`);
    parts.push(`<text x="${x}" y="${M.t + s.ph + 17}" class="xtick">${t}</text>`);
  }
  parts.push(`<text x="${M.l + s.pw}" y="${PANEL_HEIGHT - 6}" class="xlabel">step</text>`);
  for (const m of model.marks) {
    const st = MARK_STYLE[m.kind];
    const x = n2(s.x(m.step));
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${M.t}" y2="${M.t + s.ph}" stroke="${st.color}" stroke-width="${st.width}"` +
        `${st.dash ? ` stroke-dasharray="${st.dash} ${st.dash}"` : ''} ${crisp} class="mark ${m.kind}">` +
        `<title>${esc(m.label)}</title></line>`,
    );
  }
  for (const ser of panel.series) {
    if (!ser.points.length) continue;
    const pts = ser.points.map(([x, v]) => `${n2(s.x(x))},${n2(s.y(v))}`);
    if (ser.line)
      parts.push(
        `<path d="M${pts.join(' L')}" fill="none" stroke="${ser.color}" stroke-width="${ser.width ?? 1.8}"` +
          `${ser.dash ? ` stroke-dasharray="${ser.dash} ${ser.dash}"` : ''}` +
          `${ser.opacity !== undefined ? ` stroke-opacity="${ser.opacity}"` : ''} stroke-linejoin="round">` +
          `<title>${esc(ser.name)}</title></path>`,
      );
    if (ser.markers)
      for (const [x, v] of ser.points)
        parts.push(
          `<circle cx="${n2(s.x(x))}" cy="${n2(s.y(v))}" r="3" fill="${ser.color}">` +
            `<title>${esc(`${ser.name} at step ${x}: ${panel.format(v)}`)}</title></circle>`,
        );
  }
  // The frame after the curves, so curves at the edges do not hide it.
  parts.push(`<rect x="${M.l}" y="${M.t}" width="${s.pw}" height="${s.ph}" class="frame" ${crisp}/>`);
  // Legend, right-aligned above the plot.
  const entries = [
    // A faint series (raw points under their smoothed curve) needs no entry of its own.
    ...panel.series
      .filter((x) => x.points.length && (x.opacity ?? 1) === 1)
      .map((x) => ({ label: x.name, color: x.color, dash: x.dash ?? 0 })),
    ...[...new Set(panel.legendMarks ? model.marks.map((m) => m.kind) : [])].map((k) => ({
      label: MARK_STYLE[k].legend,
      color: MARK_STYLE[k].color,
      dash: MARK_STYLE[k].dash,
    })),
  ];
  let lx = WIDTH - M.r;
  for (const e of [...entries].reverse()) {
    // A long run id (--compare) is cut, so the legend stays clear of the panel title.
    const label = e.label.length > 26 ? `${e.label.slice(0, 25)}…` : e.label;
    lx -= 24 + label.length * 6.2 + 10;
    parts.push(
      `<line x1="${n2(lx)}" x2="${n2(lx + 18)}" y1="16" y2="16" stroke="${e.color}" stroke-width="2.5"` +
        `${e.dash ? ` stroke-dasharray="${e.dash} ${e.dash}"` : ''}/>`,
    );
    parts.push(`<text x="${n2(lx + 22)}" y="20" class="legend">${esc(label)}</text>`);
  }
  if (!panel.series.some((x) => x.points.length))
    parts.push(`<text x="${M.l + s.pw / 2}" y="${M.t + s.ph / 2}" class="empty">no data yet</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/** A standalone SVG document: a caption line, then every panel stacked; what the PNG is rendered from. */
export function chartSvg(model: ChartModel, caption: string): string {
  const height = CAPTION_HEIGHT + PANEL_HEIGHT * model.panels.length;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    `<style>text { font-family: sans-serif; fill: #222; } .caption { font-size: 14px; }${SVG_CSS}</style>`,
    `<rect x="0" y="0" width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="${M.l}" y="19" class="caption">${esc(caption)}</text>`,
    ...model.panels.map((p, i) => panelSvg(model, p, CAPTION_HEIGHT + i * PANEL_HEIGHT)),
    '</svg>',
    '',
  ].join('\n');
}
