// Shared CLI plumbing: errors with exit codes, JSON/human output, spec loading, run lookups.
import { DurableTrainError } from '../spec/errors';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { decodePayload } from '../codec';
import { validateSpec, SpecError, type RunSpec } from '../spec';
import { InvalidIdError, validateCheckpointId, validateRunId } from '../spec/ids';
import { progressQuery } from '../workflows/definitions';
import { PROJECT_ROOT } from './tools';
import { modelLabel } from '../spec/labels';
import type { RunProgress, RunResult } from '../workflows/progress';
import type { ChunkHeartbeat } from '../activities/types';

export class CliError extends DurableTrainError {
  readonly code = 'command' as const;

  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.check,
  ) {
    super(message);
  }
}

/**
 * Exit codes of every command: 0 ok; 1 a check failed (health alert, damaged checkpoint) or an unexpected error;
 * 2 bad usage or input; 3 not found (run, checkpoint); 4 wrong state (already running, not running);
 * 5 the run ended without a result (failed, cancelled, terminated, timed out); 6 Temporal unreachable.
 */
export const EXIT = { ok: 0, check: 1, usage: 2, notFound: 3, state: 4, runFailed: 5, unreachable: 6 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** `--port P`: a TCP port number, `dflt` when not given; or exit 2. */
export function portOption(value: string | undefined, name: string, dflt: number): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0 || n > 65535)
    throw new CliError(`--${name} must be a port number, got ${value}`, EXIT.usage);
  return n;
}

/** A run id from the command line, or exit 2 with `invalid run id "../x": ...`. */
export function runIdArg(id: unknown): string {
  try {
    return validateRunId(id);
  } catch (err) {
    if (err instanceof InvalidIdError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}

/** A checkpoint id from the command line, or exit 2. */
export function checkpointIdArg(id: unknown): string {
  try {
    return validateCheckpointId(id);
  } catch (err) {
    if (err instanceof InvalidIdError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}

/**
 * The status to show for a run. The workflow's own status (progress query, search attribute, result) says what
 * training was doing; once the execution closed any other way than COMPLETED (failed, terminated, timed out,
 * cancelled) that last word is stale ("running"), and Temporal's execution status is the truth.
 */
export function runStatus(workflowStatus: string, reported?: string | null): string {
  if (workflowStatus === 'RUNNING' || workflowStatus === 'COMPLETED' || workflowStatus === 'CONTINUED_AS_NEW')
    return reported ?? workflowStatus.toLowerCase();
  return workflowStatus.toLowerCase();
}

/** The most telling message of a failure chain: the root cause, not the "Activity task failed" wrappers. */
export function rootCause(err: Error): string {
  const chain: string[] = [];
  for (let e: Error | undefined = err; e; e = e.cause as Error | undefined) chain.push(e.message);
  return (
    chain
      .slice(1)
      .reverse()
      .find((m) => m && m !== 'Activity task failed') ?? err.message
  );
}

export interface Out {
  json: boolean;
  /** Prints `data` as JSON, or `human()` as text. */
  emit(data: unknown, human: () => string): void;
}

export function output(json: boolean, write: (text: string) => void = (s) => process.stdout.write(s)): Out {
  return {
    json,
    emit(data, human) {
      write((json ? JSON.stringify(data) : human()) + '\n');
    },
  };
}

/** Reads and validates a spec file; errors name the field. */
export function loadSpecFile(file: string): RunSpec {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read spec ${file}: ${(err as Error).message}`, EXIT.usage);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CliError(`spec ${file} is not valid JSON: ${(err as Error).message}`, EXIT.usage);
  }
  return validateOrExit(raw, file);
}

export function validateOrExit(raw: unknown, where: string): RunSpec {
  try {
    return validateSpec(raw);
  } catch (err) {
    if (err instanceof SpecError) throw new CliError(`${where}: ${err.message}`, EXIT.usage);
    throw err;
  }
}

export interface RunView {
  runId: string;
  status: string;
  spec: RunSpec | null;
  progress: RunProgress | null;
  result: RunResult | null;
  heartbeat: ChunkHeartbeat | null;
  failure: string | null;
  /** The server's pending activities (attempt, last failure), for health. */
  pending: PendingActivity[];
}

export type PendingActivity = NonNullable<
  Awaited<ReturnType<WorkflowHandle['describe']>>['raw']['pendingActivities']
>[number];

/** Everything known about a run, from the server alone when no worker answers queries. */
export async function viewRun(client: Client, runId: string, opts: { query?: boolean } = {}): Promise<RunView> {
  const handle: WorkflowHandle = client.workflow.getHandle(runId);
  let desc;
  try {
    desc = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new CliError(`no run ${runId}`, EXIT.notFound);
    throw err;
  }
  const spec = (desc.memo?.spec as RunSpec | undefined) ?? null;
  const view: RunView = {
    runId,
    status: desc.status.name,
    spec,
    progress: null,
    result: null,
    heartbeat: null,
    failure: null,
    pending: desc.raw.pendingActivities ?? [],
  };
  const pending = desc.raw.pendingActivities?.[0];
  const hbPayload = pending?.heartbeatDetails?.payloads?.[0];
  if (hbPayload) {
    try {
      view.heartbeat = (await decodePayload(client, hbPayload as never)) as ChunkHeartbeat;
    } catch {
      view.heartbeat = null;
    }
  }
  if (desc.status.name === 'COMPLETED') {
    view.result = (await handle.result()) as RunResult;
  } else if (desc.status.name === 'FAILED' || desc.status.name === 'TERMINATED' || desc.status.name === 'TIMED_OUT') {
    // The root cause says what went wrong ("checkpoint storage ... is not writable"), the wrappers do not.
    view.failure = await handle.result().then(
      () => null,
      (err: Error) => rootCause(err),
    );
  }
  if (opts.query !== false) {
    try {
      view.progress = await client.connection.withDeadline(Date.now() + 3000, () => handle.query(progressQuery));
    } catch {
      view.progress = null; // no worker to answer (or a closed run without a cached state)
    }
  }
  if (!view.result && view.progress?.result) view.result = view.progress.result;
  return view;
}

export function resolveStorage(spec: RunSpec, override?: string): string {
  return override ?? spec.checkpoint.storage;
}

export const fmt = (v: number | null | undefined, digits = 4): string =>
  v === null || v === undefined ? '-' : v.toFixed(digits);

/** The run id for a spec file: its name (without .json, other characters as '-') and a short random suffix. */
export function runIdForSpecFile(file: string): string {
  const stem = path
    .basename(file)
    .replace(/\.json$/i, '')
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 180);
  const suffix = Math.random().toString(36).slice(2, 7).padEnd(5, '0');
  return `${stem || 'run'}-${suffix}`;
}

export function defaultRunId(spec: RunSpec): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${modelLabel(spec.model)}-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

export const projectPath = (...p: string[]) => path.join(PROJECT_ROOT, ...p);
