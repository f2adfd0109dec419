// The report drawn from the metrics log: step-resolution curves (raw faint, EMA bold), test points, the
// learning-rate curve, a compared run dashed; checked in the PNG rendered from the same SVG (resvg).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chartModel, emaSmooth } from '../../cli/report/chart';
import type { ReportData } from '../../cli/report/data';
import { renderHtml } from '../../cli/report/html';
import { renderPng } from '../../cli/report/png';
import { CAPTION_HEIGHT, chartSvg, PANEL_HEIGHT } from '../../cli/report/svg';
import { mergeSegments, MetricsSegmentWriter, type MetricsLog } from '../../telemetry/metrics-log';
import { countColor, decodePng, type DecodedPng } from '../ui/png-inspect';

/** A noisy, falling loss over `total` steps; lr decays by half at the middle; evaluations every 100 steps. */
function logOf(runId: string, total: number, start = 0, offset = 0): MetricsLog {
  const w = new MetricsSegmentWriter(runId, start, { continues: false });
  let seed = 7;
  const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.5;
  for (let s = start + 1; s <= total; s++) {
    w.record({
      step: s,
      loss: 2.3 * Math.exp(-s / 120) + 0.15 + offset + noise(),
      accuracy: Math.min(1, Math.max(0, 1 - 0.9 * Math.exp(-s / 100) - offset + noise() * 0.3)),
      learningRate: s <= total / 2 ? 0.001 : 0.0005,
      samplesPerSec: 1000,
    });
    if (s % 100 === 0) w.recordEval({ epoch: s / 100 - 1, step: s, loss: 2 * Math.exp(-s / 120) + 0.3, accuracy: 0.8 });
  }
  return { ...mergeSegments(runId, [w.cut(total, total)]), gapBefore: null };
}

function data(log: MetricsLog, compare: MetricsLog | null): ReportData {
  return {
    runId: log.runId,
    generatedAt: '2026-12-01T20:00:00.000Z',
    view: {
      runId: log.runId,
      status: 'COMPLETED',
      spec: null,
      progress: null,
      result: null,
      heartbeat: null,
      failure: null,
      pending: [],
    },
    spec: null,
    history: { executions: [], chunks: [] },
    evals: log.evals,
    checkpoints: [],
    checkpointsError: null,
    recoveries: [{ requested: 'a', restoredFrom: 'a', reason: 'worker lost', attempt: 2, step: 200 }],
    learningRateChanges: [],
    totalSteps: 400,
    log,
    logError: null,
    compare: compare ? { runId: compare.runId, log: compare, error: null, totalSteps: 400 } : null,
  };
}

/** Pixels of colour `hex` (any alpha blend aside) in panel `i`'s plot area. */
function inPanel(img: DecodedPng, hex: string, i: number): number {
  const [r, g, b] = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  let n = 0;
  const top = CAPTION_HEIGHT + i * PANEL_HEIGHT;
  for (let y = top + 34; y < top + PANEL_HEIGHT - 40; y++)
    for (let x = 72; x < 880; x++) {
      const o = (y * img.width + x) * 3;
      if (img.pixels[o] === r && img.pixels[o + 1] === g && img.pixels[o + 2] === b) n++;
    }
  return n;
}

describe('report curves from the metrics log', function () {
  const log = logOf('main', 400);
  const fork = logOf('fork', 400, 0, 0.2);

  it('smooths as TensorBoard does: a debiased exponential moving average', function () {
    assert.deepEqual(emaSmooth([[1, 2]], 0.6), [[1, 2]], 'the first point is itself (debiased)');
    const [, b] = emaSmooth(
      [
        [1, 2],
        [2, 4],
      ],
      0.5,
    );
    // last = 0.5*(0.5*0 + 0.5*2) + 0.5*4 = 2.5; debiased by 1 - 0.5^2 = 0.75.
    assert.equal(b[1], 2.5 / 0.75);
    assert.ok(Number.isNaN(emaSmooth([[1, NaN]])[0][1]));
  });

  it('draws every logged step, its smoothed line, test points and the learning rate; --compare adds the other run', function () {
    const model = chartModel(data(log, fork));
    const loss = model.panels[0];
    assert.deepEqual(
      loss.series.map((s) => s.name),
      ['fork', 'fork test', 'train loss (raw)', 'train loss (smoothed)', 'test loss'],
    );
    assert.equal(loss.series[2].points.length, 400);
    assert.equal(loss.series[3].points.length, 400);
    assert.equal(model.panels[2].series[0].points.length, 400);
    const svg = chartSvg(model, 'durable-train main: step 400/400, COMPLETED');
    const png = renderPng(svg);
    const out = path.join(os.tmpdir(), 'dt-report-curves.png');
    fs.writeFileSync(out, png); // for a person to look at
    const img = decodePng(png);
    const white = countColor(img, '#ffffff');
    assert.ok(white < img.width * img.height * 0.95, `not blank: ${white} white pixels`);
    assert.ok(inPanel(img, '#1f77b4', 0) > 500, `smoothed train loss (blue): ${inPanel(img, '#1f77b4', 0)}`);
    assert.ok(inPanel(img, '#1f77b4', 1) > 500, 'smoothed train accuracy (blue)');
    assert.ok(inPanel(img, '#7f7f7f', 0) > 200, `compared run (grey dashed): ${inPanel(img, '#7f7f7f', 0)}`);
    assert.ok(inPanel(img, '#ff7f0e', 0) > 30, 'test loss points (orange)');
    assert.ok(inPanel(img, '#8c564b', 2) > 300, 'learning rate (brown)');
    assert.ok(inPanel(img, '#d62728', 0) > 100, 'the recovery mark (red)');
    // The faint raw line is drawn too: light blues that are neither the curve's blue nor white.
    let faint = 0;
    for (let o = 0; o < img.pixels.length; o += 3) {
      const [r, b] = [img.pixels[o], img.pixels[o + 2]];
      if (b > 200 && r > 150 && r < 240 && b - r > 15) faint++;
    }
    assert.ok(faint > 1000, `raw points (faint blue): ${faint}`);
    const page = renderHtml(data(log, fork), model);
    assert.match(page, /at every step from the run's metrics log \(400 points\)/);
    assert.match(page, /Run fork is drawn dashed in grey/);
  });
});
