// `fork --from RUN_ID[:CKPT] --spec-override FILE [--run-id NEW] [--wait]`: a new run from any checkpoint.
import * as fs from 'node:fs';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { planFork, mergeForkSpec } from '../spec/fork';
import { SpecError, stepCounts, validateSpec, type RunSpec } from '../spec';
import { builtinTrainRows } from '../spec/helpers';
import { CliError, type Out } from './common';
import { formatProblems } from '../checkpoint';
import { managerForRun } from './checkpoints';
import type { TemporalSettings } from './connection';
import { startCommand } from './start';

export function parseRunRef(ref: string): { runId: string; checkpointId?: string } {
  const i = ref.indexOf(':');
  if (i === 0 || ref === '') throw new CliError(`expected RUN_ID[:CKPT], got ${JSON.stringify(ref)}`, 2);
  return i < 0 ? { runId: ref } : { runId: ref.slice(0, i), checkpointId: ref.slice(i + 1) || undefined };
}

export async function sourceSpec(client: Client, runId: string): Promise<RunSpec> {
  try {
    const d = await client.workflow.getHandle(runId).describe();
    const spec = d.memo?.spec as RunSpec | undefined;
    if (!spec) throw new CliError(`run ${runId} has no spec memo`, 2);
    return spec;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new CliError(`no run ${runId}`, 3);
    throw err;
  }
}

async function runExists(client: Client, runId: string): Promise<boolean> {
  try {
    await client.workflow.getHandle(runId).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

function readOverride(file: string | undefined): unknown {
  if (!file) return {};
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError(`cannot read spec override ${file}: ${(err as Error).message}`, 2);
  }
}

export async function forkCommand(
  client: Client,
  settings: TemporalSettings,
  out: Out,
  opts: { from: string; overrideFile?: string; runId?: string; wait?: boolean },
): Promise<void> {
  const ref = parseRunRef(opts.from);
  const base = validateSpec(await sourceSpec(client, ref.runId));
  const where = `${opts.overrideFile ?? 'override'} (merged over ${ref.runId}'s spec)`;
  let spec: RunSpec;
  try {
    spec = validateSpec(mergeForkSpec(base, readOverride(opts.overrideFile)));
    planFork(base, spec);
  } catch (err) {
    if (err instanceof SpecError) throw new CliError(`fork: ${where}: ${err.message}`, 2);
    throw err;
  }
  // A fork never writes into another run: its id must be new.
  const runId = opts.runId ?? `${ref.runId}-fork-${Date.now().toString(36)}`;
  if (await runExists(client, runId)) {
    throw new CliError(
      `fork: run ${runId} already exists; choose a new --run-id (a fork never writes into another run)`,
      2,
    );
  }
  const manager = await managerForRun(client, ref.runId);
  let checkpointId = ref.checkpointId;
  let step: number;
  if (checkpointId) {
    const v = await manager.verify(checkpointId);
    if (!v.ok)
      throw new CliError(`checkpoint ${ref.runId}:${checkpointId} cannot be forked: ${formatProblems(v.problems)}`, 3);
    step = (await manager.readManifest(checkpointId)).step;
  } else {
    const latest = await manager.latestValid();
    if (!latest) throw new CliError(`run ${ref.runId} has no checkpoints to fork from`, 3);
    checkpointId = latest.manifest.id;
    step = latest.manifest.step;
  }
  // A file dataset's step count is known once a worker reads it; the worker refuses that case the same way.
  const rows = builtinTrainRows(spec);
  const totalSteps = rows === null ? Infinity : stepCounts(spec, rows).totalSteps;
  if (step >= totalSteps) {
    throw new CliError(
      `fork: checkpoint ${ref.runId}:${checkpointId} is at step ${step} and the fork trains ${totalSteps} steps: ` +
        `nothing left to train (set a larger "epochs" in the override)`,
      2,
    );
  }
  await startCommand(client, settings, out, {
    spec,
    runId,
    from: { runId: ref.runId, id: checkpointId },
    sourceSpec: base,
    wait: opts.wait,
  });
}
