// `watch RUN_ID`: a live progress bar until the run ends.
import type { Client } from '@temporalio/client';
import type { RunResult } from '../workflows/progress';
import { CliError, fmt, runStatus, viewRun, type Out, type RunView } from './common';
import { replicaSuffix } from './replicas';
import { describeResult } from './start';

const CLOSED = ['COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT'];

export function progressLine(v: RunView, width = 30): string {
  const p = v.progress;
  const hb = v.heartbeat;
  const step = Math.max(hb?.step ?? 0, p?.step ?? 0, v.result?.step ?? 0);
  const total = p?.totalSteps || hb?.totalSteps || v.result?.totalSteps || 0;
  const frac = total ? Math.min(1, step / total) : 0;
  const filled = Math.round(frac * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const epochs = v.spec?.epochs;
  const epoch = (hb?.epoch ?? p?.epoch ?? 0) + (frac < 1 ? 1 : 0);
  const status = runStatus(v.status, p?.status);
  const sps = hb?.samplesPerSec ?? p?.samplesPerSec;
  return (
    `[${bar}] ${(frac * 100).toFixed(1).padStart(5)}% step ${step}/${total || '?'} epoch ${Math.min(epoch, epochs ?? epoch)}/${epochs ?? '?'}` +
    ` loss ${fmt(hb?.loss ?? p?.loss)} acc ${fmt(hb?.accuracy ?? p?.accuracy, 3)}` +
    ` ${sps ? Math.round(sps) : '-'} samples/s` +
    (p?.lastEval
      ? p.lastEval.mse !== undefined
        ? ` test mae ${fmt(p.lastEval.mae, 4)}`
        : ` test acc ${fmt(p.lastEval.accuracy, 4)}`
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
      throw new CliError(`run ${runId} ended ${v.status}${v.failure ? `: ${v.failure}` : ''}`, 5);
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
