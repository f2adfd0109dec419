// The report's chart drawn from a fixed run: the page inlines the panels of the very SVG document that the PNG is
// rendered from (resvg), and the PNG has real content: the curves in their colours and places, the marks, text.
import * as assert from 'node:assert/strict';
import type { ChunkRecord, ReportData } from '../../cli/report/data';
import { chartModel } from '../../cli/report/chart';
import { renderHtml } from '../../cli/report/html';
import { canDrawText, renderPng } from '../../cli/report/png';
import { CAPTION_HEIGHT, chartSvg, PANEL_HEIGHT, panelSvg, WIDTH } from '../../cli/report/svg';
import { countColor, decodePng, type DecodedPng } from '../ui/png-inspect';

/** 12 chunks of 10 steps: loss falls, accuracy rises, one recovery at step 50, one set-lr at step 80. */
function reportData(opts: { recovery: boolean; rounds?: boolean }): ReportData {
  const chunks: ChunkRecord[] = Array.from({ length: 12 }, (_, i) => {
    const step = (i + 1) * 10;
    const recovered = opts.recovery && step === 60;
    return {
      checkpoint: {
        id: `step-${String(step).padStart(9, '0')}-abc`,
        step,
        epoch: step <= 60 ? 0 : 1,
        runId: 'render-test',
      },
      fromStep: step - 10,
      step,
      totalSteps: 120,
      epoch: step <= 60 ? 0 : 1,
      done: step === 120,
      stepsRun: 10,
      cut: false,
      loss: 2.3 * Math.exp(-step / 40) + 0.1,
      accuracy: 1 - 0.9 * Math.exp(-step / 35),
      learningRate: step < 80 ? 0.001 : 0.0005,
      evals:
        step % 60 === 0 ? [{ epoch: step / 60 - 1, step, loss: 0.5 + (0.3 * (120 - step)) / 60, accuracy: 0.8 }] : [],
      lastEval: null,
      samplesPerSec: 900,
      backend: 'tensorflow',
      commits: 1,
      source: recovered ? 'restored' : 'warm',
      recovery: recovered
        ? { requested: 'step-000000050-abc', restoredFrom: 'step-000000050-abc', reason: 'worker lost', attempt: 2 }
        : null,
      weightsSha256: 'f'.repeat(64),
      trainMs: 100,
      commitMs: 5,
      execution: step <= 60 ? 'exec-1' : 'exec-2',
      completedAt: '2026-12-01T20:00:00.000Z',
      // A distributed run: each chunk is a sync round.
      ...(opts.rounds ? { round: i } : {}),
    };
  });
  return {
    runId: 'render-test',
    generatedAt: '2026-12-01T20:00:00.000Z',
    view: {
      runId: 'render-test',
      status: 'COMPLETED',
      spec: null,
      progress: null,
      result: null,
      heartbeat: null,
      failure: null,
      pending: [],
    },
    spec: null,
    history: { executions: ['exec-1', 'exec-2'], chunks },
    evals: chunks.flatMap((c) => c.evals),
    checkpoints: [],
    checkpointsError: null,
    recoveries: chunks.filter((c) => c.recovery).map((c) => ({ ...c.recovery!, step: c.fromStep })),
    learningRateChanges: [{ step: 80, value: 0.0005 }],
    totalSteps: 120,
    log: null,
    logError: null,
    compare: null,
  };
}

/** Rows (top to bottom) of the pixels of exactly colour `rgb` in columns [x0, x1), within panel `i`'s plot area. */
function rowsOf(img: DecodedPng, rgb: [number, number, number], i: number, x0: number, x1: number): number[] {
  const rows: number[] = [];
  const top = CAPTION_HEIGHT + i * PANEL_HEIGHT;
  for (let y = top + 34; y < top + PANEL_HEIGHT - 40; y++)
    for (let x = x0; x < x1; x++) {
      const o = (y * img.width + x) * 3;
      if (img.pixels[o] === rgb[0] && img.pixels[o + 1] === rgb[1] && img.pixels[o + 2] === rgb[2]) rows.push(y);
    }
  return rows;
}
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const BLUE: [number, number, number] = [0x1f, 0x77, 0xb4];

describe('report chart: one SVG for the page and the PNG (resvg)', function () {
  const data = reportData({ recovery: true });
  const model = chartModel(data);
  const svg = chartSvg(model, 'durable-train render-test: step 120/120, COMPLETED');
  const img = decodePng(renderPng(svg));

  it('inlines in the page exactly the panels of the document the PNG is rendered from', function () {
    const page = renderHtml(data, model);
    assert.equal((page.match(/<svg\b/g) ?? []).length, 3);
    assert.equal((svg.match(/<svg class="chart"/g) ?? []).length, 3);
    for (const [i, p] of model.panels.entries()) {
      // The same element, only placed (x, y) inside the standalone document.
      const inPage = panelSvg(model, p);
      assert.ok(page.includes(inPage), `panel ${p.title} in the page`);
      assert.ok(svg.includes(inPage.replace('<svg class="chart"', `<svg class="chart" x="0" y="${26 + i * 240}"`)));
    }
    assert.doesNotMatch(page, /xmlns|https?:\/\//, 'the page references nothing');
  });

  it('renders an RGBA PNG of the document size that is neither blank nor flat', function () {
    assert.equal(img.width, WIDTH);
    assert.equal(img.height, CAPTION_HEIGHT + 3 * PANEL_HEIGHT);
    assert.equal(img.colorType, 6);
    const white = countColor(img, '#ffffff');
    const pixels = img.width * img.height;
    assert.ok(white < pixels * 0.97 && white > pixels * 0.5, `white pixels: ${white} of ${pixels}`);
  });

  it('draws the curves in their colours where the data puts them', function () {
    assert.ok(countColor(img, '#1f77b4') > 300, `train curves (blue): ${countColor(img, '#1f77b4')}`);
    assert.ok(countColor(img, '#ff7f0e') > 30, 'test loss (orange)');
    assert.ok(countColor(img, '#2ca02c') > 30, 'test accuracy (green)');
    assert.ok(countColor(img, '#8c564b') > 100, 'learning rate (brown)');
    // The plot runs over x 72..880 for steps 0..120: the train curves start at step 10 (x ~139).
    const lossLeft = mean(rowsOf(img, BLUE, 0, 150, 200));
    const lossRight = mean(rowsOf(img, BLUE, 0, 800, 860));
    assert.ok(lossLeft < lossRight - 50, `loss falls: mean row ${lossLeft} at the left, ${lossRight} at the right`);
    const accLeft = mean(rowsOf(img, BLUE, 1, 150, 200));
    const accRight = mean(rowsOf(img, BLUE, 1, 800, 860));
    assert.ok(accLeft > accRight + 50, `accuracy rises: mean row ${accLeft} at the left, ${accRight} at the right`);
  });

  it('marks the recovery in red on every panel, and only when there was one', function () {
    const x = Math.round(72 + (50 / 120) * 808);
    for (let i = 0; i < 3; i++)
      assert.ok(rowsOf(img, [0xd6, 0x27, 0x28], i, x - 2, x + 3).length > 100, `recovery mark on panel ${i}`);
    const calm = decodePng(renderPng(chartSvg(chartModel(reportData({ recovery: false })), 'no recovery')));
    assert.equal(countColor(calm, '#d62728'), 0);
    assert.ok(countColor(calm, '#1f77b4') > 300);
  });

  it('marks each sync round of a distributed run, in place of the plain checkpoint mark, and names it in the table', function () {
    const dist = reportData({ recovery: false, rounds: true });
    const m = chartModel(dist);
    const syncs = m.marks.filter((k) => k.kind === 'sync');
    assert.deepEqual(
      syncs.map((k) => k.step),
      dist.history.chunks.map((c) => c.step),
    );
    assert.match(syncs[2].label, /^sync round 2 \(step 30\): checkpoint step-000000030-abc$/);
    assert.equal(m.marks.filter((k) => k.kind === 'checkpoint').length, 0, 'no second mark at a round');
    assert.equal(model.marks.filter((k) => k.kind === 'sync').length, 0, 'a single run has no sync marks');
    const png = decodePng(renderPng(chartSvg(m, 'distributed')));
    const x = Math.round(72 + (30 / 120) * 808);
    assert.ok(rowsOf(png, [0x17, 0xbe, 0xcf], 0, x - 2, x + 3).length > 50, 'sync mark drawn at step 30');
    assert.equal(countColor(img, '#17becf'), 0);
    assert.match(renderHtml(dist, m), /20\.\.30 \(round 2\)/);
  });

  it('draws text with a system font (caption, titles, ticks)', function () {
    assert.ok(canDrawText(), 'resvg finds a font on this machine');
    let dark = 0;
    for (let i = 0; i < CAPTION_HEIGHT * img.width * 3; i += 3)
      if (img.pixels[i] < 110 && img.pixels[i + 1] < 110 && img.pixels[i + 2] < 110) dark++;
    assert.ok(dark > 200, `dark caption pixels: ${dark}`);
  });
});
