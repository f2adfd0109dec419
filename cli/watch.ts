// `watch RUN_ID`: a live progress bar until the run ends, with an ETA.
import type { Client } from '@temporalio/client';
import type { RunResult } from '../workflows/progress';
import { CliError, EXIT, fmt, runStatus, viewRun, type Out, type RunView } from './common';
import { epochOfStep } from './epoch';
import { replicaSuffix } from './replicas';
import { describeResult } from './start';
import { defineCommand, RUN_ID_ARGUMENT } from './command';
import { connectClient } from './connection';

const CLOSED = ['COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT'];

/** "1h02m", "3m05s", "42s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/**
 * Time left at the current speed: the steps left, each of a batch of `batchSize` examples at `samplesPerSec`
 * (training only: evaluations and commits add a little). null when the speed is unknown.
 */
export function etaSeconds(step: number, total: number, samplesPerSec: number | null | undefined, batchSize?: number) {
  if (!total || !samplesPerSec || !(samplesPerSec > 0) || !batchSize) return null;
  return (Math.max(0, total - step) * batchSize) / samplesPerSec;
}

export function progressLine(v: RunView, width = 30): string {
  const p = v.progress;
  const hb = v.heartbeat;
  const step = Math.max(hb?.step ?? 0, p?.step ?? 0, v.result?.step ?? 0);
  const total = p?.totalSteps || hb?.totalSteps || v.result?.totalSteps || 0;
  const frac = total ? Math.min(1, step / total) : 0;
  const filled = Math.round(frac * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const epochs = v.spec?.epochs;
  // Epochs counted from 1 (the epoch the latest step belongs to), as in status, checkpoints list and the report.
  const perEpoch = p?.stepsPerEpoch || (total && epochs ? total / epochs : 0);
  const epoch = perEpoch ? epochOfStep(step, perEpoch) : null;
  const status = runStatus(v.status, p?.status);
  const sps = hb?.samplesPerSec ?? p?.samplesPerSec;
  const running = !v.result && (p?.status ?? 'running') === 'running';
  const eta = running ? etaSeconds(step, total, sps, v.spec?.batchSize) : null;
  return (
    `[${bar}] ${(frac * 100).toFixed(1).padStart(5)}% step ${step}/${total || '?'} epoch ${epoch ?? '?'}/${epochs ?? '?'}` +
    ` loss ${fmt(hb?.loss ?? p?.loss)} acc ${fmt(hb?.accuracy ?? p?.accuracy, 3)}` +
    ` ${sps ? Math.round(sps) : '-'} samples/s` +
    (running ? ` ETA ${eta === null ? '-' : formatDuration(eta)}` : '') +
    (p?.lastEval
      ? ` ${p.lastEval.split === 'validation' ? 'val' : 'test'}` +
        (p.lastEval.mse !== undefined ? ` mae ${fmt(p.lastEval.mae, 4)}` : ` acc ${fmt(p.lastEval.accuracy, 4)}`)
      : '') +
    ` ckpt ${p?.lastCheckpoint?.id.slice(0, 14) ?? '-'} ${status}` +
    replicaSuffix(v)
  );
}

export async function watchRun(
  client: Client,
  out: Out,
  runId: string,
  opts: { signal?: AbortSignal; intervalMs?: number } = {},
): Promise<RunResult | null> {
  const tty = process.stderr.isTTY && !out.json;
  let lastPrinted = 0;
  let lastLine = '';
  for (;;) {
    if (opts.signal?.aborted) {
      if (tty) process.stderr.write('\n');
      return null;
    }
    const v = await viewRun(client, runId);
    const line = progressLine(v);
    if (out.json) {
      process.stdout.write(
        JSON.stringify({ runId, status: v.status, progress: v.progress, heartbeat: v.heartbeat }) + '\n',
      );
    } else if (tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
    } else if (line !== lastLine && Date.now() - lastPrinted > 5000) {
      process.stderr.write(line + '\n');
      lastPrinted = Date.now();
    }
    lastLine = line;
    if (CLOSED.includes(v.status)) {
      if (tty) process.stderr.write('\n');
      if (v.result) {
        out.emit({ runId, result: v.result }, () => describeResult(v.result!));
        return v.result;
      }
      throw new CliError(`run ${runId} ended ${v.status}${v.failure ? `: ${v.failure}` : ''}`, EXIT.runFailed);
    }
    await new Promise<void>((resolve) => {
      const onAbort = () => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        opts.signal?.removeEventListener('abort', onAbort);
        resolve();
      }, opts.intervalMs ?? 1000);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export const watchDefinition = defineCommand({
  name: 'watch',
  summary: 'live progress bar (steps, epoch, loss, samples/s, ETA) until the run ends',
  arguments: [RUN_ID_ARGUMENT],
  async run({ args, out }) {
    const runId = args.RUN_ID;
    return (await watchRun(await connectClient(), out, runId)) ? EXIT.ok : EXIT.check;
  },
});
