// A 1 GiB CSV dataset: how fast it loads (rows/s, MB/s), the worker's peak memory, and the longest stall of the
// event loop while it loads. A stall longer than the heartbeat timeout (30 s for prepareRun, 10 s for a chunk) is
// an attempt Temporal gives up on and retries, forever; the decoding runs on a thread of its own for that reason.
// Both ways are measured: on the thread (what workers do) and on the event loop (what they did before).
//
//   node dist/bench/large-csv.js [--mib 1024] [--quick]    (--quick: 64 MiB)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { clearDataCache, loadData } from '../training/data';
import { QUICK, emit, log, machine, numArg, now, rmrf, round, table, tmpDir } from './common';

const FEATURES = 20;

/** Writes about `bytes` of CSV: FEATURES numeric columns with 4 decimals and a label of 10 classes. */
function writeCsv(file: string, bytes: number): number {
  const fd = fs.openSync(file, 'w');
  let written = 0;
  let rows = 0;
  fs.writeSync(fd, [...Array.from({ length: FEATURES }, (_, j) => `f${j}`), 'label'].join(',') + '\n');
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 200 - 100;
  while (written < bytes) {
    const lines: string[] = [];
    for (let k = 0; k < 10_000; k++, rows++) {
      const f = Array.from({ length: FEATURES }, () => rand().toFixed(4));
      lines.push(`${f.join(',')},c${rows % 10}`);
    }
    const chunk = lines.join('\n') + '\n';
    fs.writeSync(fd, chunk);
    written += Buffer.byteLength(chunk);
  }
  fs.closeSync(fd);
  return rows;
}

async function measure(file: string, onThread: boolean) {
  clearDataCache();
  global.gc?.();
  // The longest gap between ticks of a 5 ms timer: how long the event loop (and so every heartbeat) stood still.
  let last = now();
  let maxGap = 0;
  const tick = setInterval(() => {
    const t = now();
    maxGap = Math.max(maxGap, t - last);
    last = t;
  }, 5);
  const t0 = now();
  const d = await loadData(
    { format: 'csv', path: `file://${file}`, label: 'label', task: 'classification' },
    { seed: 1, baseDir: path.dirname(file), decodeOnThreadFrom: onThread ? undefined : Infinity },
  );
  const seconds = (now() - t0) / 1000;
  clearInterval(tick);
  maxGap = Math.max(maxGap, now() - last);
  const rows = d.train.n + d.test.n;
  return {
    way: onThread ? 'worker thread (workers)' : 'event loop (before)',
    seconds: round(seconds, 1),
    rowsPerSecond: Math.round(rows / seconds),
    mibPerSecond: round(d.bytesRead / 2 ** 20 / seconds, 1),
    maxEventLoopStallMs: Math.round(maxGap),
    rows,
  };
}

async function main() {
  const mib = numArg('--mib', QUICK ? 64 : 1024);
  const dir = tmpDir('durable-train-large-csv-');
  const file = path.join(dir, 'large.csv');
  try {
    log(`writing ${mib} MiB of CSV to ${file}...`);
    const rows = writeCsv(file, mib * 2 ** 20);
    const size = fs.statSync(file).size;
    // The decoded rows and their split copies exceed the default 1 GiB memory estimate: raise it, as the README says.
    process.env.DURABLE_TRAIN_MAX_DATASET_BYTES = String(4 * 2 ** 30);
    const threaded = await measure(file, true);
    const rssAfterThread = process.resourceUsage().maxRSS * 1024;
    const inline = await measure(file, false);
    table(`loading a ${round(size / 2 ** 30, 2)} GiB CSV (${rows} rows x ${FEATURES} features)`, [threaded, inline]);
    emit({
      bench: 'large-csv',
      machine: machine('none'),
      fileBytes: size,
      rows,
      features: FEATURES,
      threaded,
      inline,
      peakRssBytesWhileThreaded: rssAfterThread,
      heartbeatTimeoutSeconds: { prepareRun: 30, chunk: 10 },
    });
  } finally {
    rmrf(dir);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
