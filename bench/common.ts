// Shared bench plumbing: flags, statistics, machine description, output (JSON on stdout, tables on stderr),
// CPU accounting of processes, and reading activity timings back out of a workflow's history.
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import type { WorkflowHandleWithFirstExecutionRunId as WorkflowStartHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import * as tf from '@tensorflow/tfjs';
import { PROJECT_ROOT } from '../cli/tools';
import { ChunkCommits } from '../activities/chunk/commits';
import type { TrainingMetrics } from '../activities/metrics';
import type { BlobInput, CheckpointManager } from '../checkpoint';
import type { Trainer } from '../training';
import type { BackendInfo } from '../training/backend';
import type { RunSpec } from '../spec/types';
import { validateSpec } from '../spec';

export const QUICK = process.argv.includes('--quick');

/** `--name value` from argv, or undefined. */
export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

export function numArg(name: string, dflt: number): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} ${v}: not a number`);
  return n;
}

export const now = (): number => performance.now();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function round(v: number, digits = 3): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function quantile(values: number[], q: number): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const i = (v.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return v[lo] + (v[hi] - v[lo]) * (i - lo);
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
  /** (max - min) / median: how much repetitions disagreed. */
  spread: number;
  values: number[];
}

export function summarize(values: number[], digits = 4): Summary {
  const med = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return {
    median: round(med, digits),
    min: round(min, digits),
    max: round(max, digits),
    n: values.length,
    spread: round((max - min) / med, 4),
    values: values.map((v) => round(v, digits)),
  };
}

/** Rotating orders for interleaved repetitions: rep 0 forward, rep 1 reversed, rep 2 shifted by half, ... */
export function interleavedOrder<T>(items: T[], rep: number): T[] {
  if (rep % 2 === 1) return [...items].reverse();
  const shift = Math.floor((rep / 2) * Math.ceil(items.length / 2)) % Math.max(1, items.length);
  return [...items.slice(shift), ...items.slice(0, shift)];
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Files and bytes under a directory (recursive). */
export function dirStats(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        files++;
        bytes += fs.statSync(p).size;
      }
    }
  };
  try {
    walk(dir);
  } catch {
    // missing: zero
  }
  return { files, bytes };
}

export function rmrf(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

function gitCommit(): string | null {
  // Set when the benchmarks run from an exported copy of the tree (no .git there).
  if (process.env.DURABLE_TRAIN_BENCH_COMMIT) return process.env.DURABLE_TRAIN_BENCH_COMMIT;
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

export interface Machine {
  node: string;
  cpus: number;
  cpuModel: string;
  memGiB: number;
  platform: string;
  tfjs: string;
  backend: string;
  commit: string | null;
  loadavg1m: number;
}

export function machine(backend: string): Machine {
  return {
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memGiB: round(os.totalmem() / 2 ** 30, 1),
    platform: `${os.platform()} ${os.release()}`,
    tfjs: tf.version.tfjs,
    backend,
    commit: gitCommit(),
    loadavg1m: round(os.loadavg()[0], 2),
  };
}

/** The one JSON object a benchmark prints on stdout. */
export function emit(result: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(result) + '\n');
}

export function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** A human table on stderr. */
export function table(title: string, rows: Array<Record<string, unknown>>): void {
  if (!rows.length) return;
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'number' ? fmtNum(v) : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i])).join('  ');
  log(`\n${title}`);
  log(line(cols));
  log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) log(line(cols.map((c) => cell(r[c]))));
}

function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
}

/** Runs a full GC when possible (exposes it at runtime, so no node flag is needed). */
export function gc(): void {
  const g = globalThis as { gc?: () => void };
  if (!g.gc) {
    v8.setFlagsFromString('--expose-gc');
    g.gc = vm.runInNewContext('gc') as () => void;
  }
  g.gc!();
}

/** user+system CPU seconds a process has used so far (Linux /proc), or NaN. */
export function cpuSecondsOf(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the comm field: state is fields[0], utime fields[11], stime fields[12] (man proc, fields 14/15).
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / clockTicks();
  } catch {
    return NaN;
  }
}

let ticksPerSecond: number | null = null;
function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU seconds of this process so far. */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** A validated MNIST spec with our bench defaults (batch 64, adam 1e-3, seed 42). */
export function mnistSpec(o: {
  model: 'mnist-mlp' | 'mnist-cnn';
  trainLimit: number;
  testLimit: number;
  epochs: number;
  batchSize?: number;
  chunkSteps?: number;
  chunkSeconds?: number;
  storage: string;
  everySeconds?: number;
  keepLatest?: number;
}): RunSpec {
  return validateSpec({
    model: o.model,
    dataset: { name: 'mnist', trainLimit: o.trainLimit, testLimit: o.testLimit },
    epochs: o.epochs,
    batchSize: o.batchSize ?? 64,
    ...(o.chunkSteps !== undefined ? { chunkSteps: o.chunkSteps } : {}),
    ...(o.chunkSeconds !== undefined ? { chunkSeconds: o.chunkSeconds } : {}),
    seed: 42,
    optimizer: { name: 'adam', learningRate: 0.001 },
    checkpoint: {
      storage: o.storage,
      ...(o.everySeconds !== undefined ? { everySeconds: o.everySeconds } : {}),
      ...(o.keepLatest !== undefined ? { keepLatest: o.keepLatest } : {}),
    },
  });
}

// ---------------------------------------------------------------------------------------------------------
// Workflow history: activity timings and results (follows continue-as-new).
// ---------------------------------------------------------------------------------------------------------

export interface ActivityRecord {
  type: string;
  scheduledMs: number;
  startedMs: number | null;
  closedMs: number | null;
  attempt: number | null;
  outcome: 'completed' | 'failed' | 'timedOut' | 'canceled' | 'open';
  result: unknown;
}

export interface Timeline {
  startMs: number;
  endMs: number;
  activities: ActivityRecord[];
  workflowTasks: number;
  events: number;
  runs: number;
}

type Ts = { seconds?: unknown; nanos?: number | null } | null | undefined;
export function tsMs(ts: Ts): number {
  if (!ts) return NaN;
  const s = ts.seconds as { toNumber?: () => number } | number | string | undefined | null;
  const secs = typeof s === 'object' && s && s.toNumber ? s.toNumber() : Number(s ?? 0);
  return secs * 1000 + (ts.nanos ?? 0) / 1e6;
}

interface PayloadsLike {
  payloads?: Array<{ metadata?: Record<string, Uint8Array> | null; data?: Uint8Array | null }> | null;
}
export function decodeFirst(p: PayloadsLike | null | undefined): unknown {
  const first = p?.payloads?.[0];
  if (!first) return undefined;
  return defaultPayloadConverter.fromPayload(first as Parameters<typeof defaultPayloadConverter.fromPayload>[0]);
}

/** Activity timings of a workflow (first execution and every continue-as-new after it). */
export async function activityTimeline(handle: WorkflowStartHandle): Promise<Timeline> {
  const out: Timeline = { startMs: NaN, endMs: NaN, activities: [], workflowTasks: 0, events: 0, runs: 0 };
  let runId: string | undefined = handle.firstExecutionRunId;
  while (runId) {
    const h = handle.client.getHandle(handle.workflowId, runId);
    const history = await h.fetchHistory();
    out.runs += 1;
    let next: string | undefined;
    const byScheduled = new Map<string, ActivityRecord>();
    for (const e of history.events ?? []) {
      out.events += 1;
      const t = tsMs(e.eventTime as Ts);
      const id = String(e.eventId);
      if (e.workflowExecutionStartedEventAttributes && Number.isNaN(out.startMs)) out.startMs = t;
      if (e.workflowTaskCompletedEventAttributes) out.workflowTasks += 1;
      const sched = e.activityTaskScheduledEventAttributes;
      if (sched) {
        const rec: ActivityRecord = {
          type: sched.activityType?.name ?? '?',
          scheduledMs: t,
          startedMs: null,
          closedMs: null,
          attempt: null,
          outcome: 'open',
          result: undefined,
        };
        byScheduled.set(id, rec);
        out.activities.push(rec);
      }
      const started = e.activityTaskStartedEventAttributes;
      if (started) {
        const rec = byScheduled.get(String(started.scheduledEventId));
        if (rec) {
          rec.startedMs = t;
          rec.attempt = started.attempt ?? null;
        }
      }
      const closers: Array<[ActivityRecord['outcome'], { scheduledEventId?: unknown } | null | undefined]> = [
        ['completed', e.activityTaskCompletedEventAttributes],
        ['failed', e.activityTaskFailedEventAttributes],
        ['timedOut', e.activityTaskTimedOutEventAttributes],
        ['canceled', e.activityTaskCanceledEventAttributes],
      ];
      for (const [outcome, attrs] of closers) {
        if (!attrs) continue;
        const rec = byScheduled.get(String(attrs.scheduledEventId));
        if (!rec) continue;
        rec.closedMs = t;
        rec.outcome = outcome;
        if (outcome === 'completed') rec.result = decodeFirst(e.activityTaskCompletedEventAttributes!.result);
      }
      if (
        e.workflowExecutionCompletedEventAttributes ||
        e.workflowExecutionFailedEventAttributes ||
        e.workflowExecutionContinuedAsNewEventAttributes
      )
        out.endMs = t;
      if (e.workflowExecutionContinuedAsNewEventAttributes)
        next = e.workflowExecutionContinuedAsNewEventAttributes.newExecutionRunId ?? undefined;
    }
    runId = next;
  }
  return out;
}

/** Weight tensors of a model with `bytes` in total (weights + m + v), each filled with random bits. */
export function adamBlobs(bytes: number): BlobInput[] {
  // A few large kernels and small biases, like a real network: shares of the weight bytes.
  const shares = [0.52, 0.26, 0.13, 0.06, 0.02, 0.007, 0.002, 0.001];
  const weightFloats = Math.floor(bytes / 3 / 4);
  const blobs: BlobInput[] = [];
  let left = weightFloats;
  shares.forEach((s, i) => {
    const n = i === shares.length - 1 ? left : Math.max(1, Math.floor(weightFloats * s));
    left -= n;
    for (const prefix of ['model', 'opt/adam/m/model', 'opt/adam/v/model']) {
      const data = new Uint8Array(n * 4);
      randomFillSync(data);
      blobs.push({ name: `${prefix}/layer${i}/kernel`, dtype: 'float32', shape: [n], data });
    }
  });
  return blobs;
}

/** The chunk's commit path for a fresh trainer, committed by hand (no time-based commits): what the commit benches drive. */
export function handCommits(o: {
  runId: string;
  manager: CheckpointManager;
  trainer: Trainer;
  backend: BackendInfo;
  metrics: TrainingMetrics;
}): ChunkCommits {
  return new ChunkCommits({ ...o, specHash: 'bench', parent: null, everySeconds: 0 });
}
