// `report RUN_ID --out FILE.html [--png FILE.png] [--force]`: one self-contained page (inline SVG, no network)
// with the run's loss, accuracy and learning-rate curves over steps, its checkpoints and recoveries, the spec
// and the checkpoint table; optionally the same curves as a PNG rendered from the same SVG.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import { CliError, EXIT, runIdArg, type Out } from '../common';
import { chartModel } from './chart';
import { collectReportData, currentStep } from './data';
import { renderHtml } from './html';
import { canDrawText, renderPng } from './png';
import { chartSvg } from './svg';
import { defineCommand, RUN_ID_ARGUMENT } from '../command';
import { connectClient } from '../connection';

const REPORT_DETAILS = `A self-contained HTML page (inline SVG, nothing fetched): training loss/accuracy at every step from the run's
metrics log (raw and smoothed) with the test evaluations, the learning rate, checkpoint and recovery marks,
chunks, checkpoints, spec; --png also renders the curves into a PNG (the same SVG, drawn by resvg);
--compare draws OTHER_RUN's curves over this run's (a fork over its parent); an existing FILE is refused
unless --force; --verify re-hashes the checkpoints for the table`;

export interface ReportOptions {
  runId: string;
  out?: string;
  png?: string;
  /** Overwrite existing output files. */
  force?: boolean;
  storage?: string;
  verify?: boolean;
  /** Another run to draw over this one. */
  compare?: string;
}

/** Refuses an output path that is a directory, or an existing file without --force: before any work. */
function checkOutput(file: string, flag: string, force: boolean): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return; // nothing there (an unwritable place fails when written, with the reason)
  }
  if (stat.isDirectory()) throw new CliError(`report: ${flag} ${file} is a directory; name a file`, EXIT.usage);
  if (!force) throw new CliError(`report: ${flag} ${file} exists; pass --force to overwrite it`, EXIT.usage);
}

/**
 * Writes `data` to `file` whole or not at all: a temporary file, then a rename over it (--force) or a hard link
 * that fails if `file` has appeared since the check.
 */
function writeOutput(file: string, flag: string, data: string | Uint8Array, force: boolean): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    if (force) fs.renameSync(tmp, file);
    else fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new CliError(`report: ${flag} ${file} exists; pass --force to overwrite it`, EXIT.usage);
    throw new CliError(`report: cannot write ${file}: ${(err as Error).message}`, EXIT.check);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

export async function reportCommand(client: Client, out: Out, opts: ReportOptions): Promise<void> {
  if (!opts.out) throw new CliError('report: --out FILE.html is required', EXIT.usage);
  const html = path.resolve(opts.out);
  const png = opts.png ? path.resolve(opts.png) : null;
  const force = Boolean(opts.force);
  if (png === html) throw new CliError(`report: --out and --png name the same file ${html}`, EXIT.usage);
  checkOutput(html, '--out', force);
  if (png) checkOutput(png, '--png', force);

  if (opts.compare === opts.runId)
    throw new CliError(`report: --compare ${opts.compare} is the run itself`, EXIT.usage);
  const d = await collectReportData(client, opts.runId, {
    storage: opts.storage,
    verify: opts.verify,
    compare: opts.compare,
  });
  if (d.logError) process.stderr.write(`durable-train: report: metrics log unavailable: ${d.logError}\n`);
  if (d.compare?.error)
    process.stderr.write(`durable-train: report: --compare ${d.compare.runId}: ${d.compare.error}\n`);
  if (d.checkpointsError)
    process.stderr.write(`durable-train: report: checkpoints unavailable: ${d.checkpointsError}\n`);
  const model = chartModel(d);
  const page = renderHtml(d, model);
  let image: Buffer | null = null;
  if (png) {
    image = renderPng(
      chartSvg(model, `durable-train ${d.runId}: step ${currentStep(d)}/${d.totalSteps}, ${d.view.status}`),
    );
    if (!canDrawText())
      process.stderr.write(
        'durable-train: report: no font found for the PNG text (install one, e.g. Debian fonts-dejavu-core); ' +
          'the curves are drawn without labels\n',
      );
  }
  writeOutput(html, '--out', page, force);
  if (png && image) writeOutput(png, '--png', image, force);
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
    /** Points of the training curves from the metrics log (0: drawn from the chunk summaries). */
    logPoints: d.log?.rows.length ?? 0,
    compare: d.compare ? { runId: d.compare.runId, logPoints: d.compare.log?.rows.length ?? 0 } : null,
  };
  out.emit(summary, () =>
    [
      `report for ${d.runId} (${d.view.status}): ${d.history.chunks.length} chunks over ${summary.executions} execution(s), ` +
        `${d.evals.length} evaluations, ${d.checkpoints.length} checkpoints, ${d.recoveries.length} recoveries, ` +
        `${summary.logPoints} logged steps${d.compare ? `, compared with ${d.compare.runId}` : ''}`,
      `  ${html}`,
      ...(png ? [`  ${png}`] : []),
    ].join('\n'),
  );
}

export const reportDefinition = defineCommand({
  name: 'report',
  summary:
    'page: per-step loss/accuracy (smoothed), LR, test points, checkpoint/recovery marks, spec; same charts as PNG; `--compare` overlays RUN',
  details: REPORT_DETAILS,
  arguments: [RUN_ID_ARGUMENT],
  options: [
    { name: 'out', value: 'FILE.html', required: true, description: 'the page to write' },
    { name: 'png', value: 'FILE.png', description: 'also the curves as a PNG' },
    { name: 'compare', value: 'RUN', description: "draw RUN's curves over this run's" },
    { name: 'force', description: 'overwrite existing files' },
    { name: 'verify', description: 're-hash the checkpoints for the table' },
    { name: 'storage', value: 'URL', description: "read the checkpoints there instead of the run's spec's storage" },
  ],
  async run({ args, opts, out }) {
    const runId = args.RUN_ID;
    await reportCommand(await connectClient(), out, {
      runId,
      out: opts.out,
      png: opts.png,
      force: opts.force,
      storage: opts.storage,
      verify: opts.verify,
      compare: opts.compare === undefined ? undefined : runIdArg(opts.compare),
    });
    return EXIT.ok;
  },
});
