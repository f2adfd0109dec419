// `fork --from RUN_ID[:CKPT] --spec-override FILE [--run-id NEW] [--wait]`: a new run from any checkpoint.
import * as fs from 'node:fs';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { mergeSpec, type RunSpec } from '../spec';
import { CliError, validateOrExit, type Out } from './common';
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

export async function forkCommand(
  client: Client,
  settings: TemporalSettings,
  out: Out,
  opts: { from: string; overrideFile?: string; runId?: string; wait?: boolean },
): Promise<void> {
  const ref = parseRunRef(opts.from);
  const base = await sourceSpec(client, ref.runId);
  let override: unknown = {};
  if (opts.overrideFile) {
    try {
      override = JSON.parse(fs.readFileSync(opts.overrideFile, 'utf8'));
    } catch (err) {
      throw new CliError(`cannot read spec override ${opts.overrideFile}: ${(err as Error).message}`, 2);
    }
  }
  const spec = validateOrExit(
    mergeSpec(base, override),
    `${opts.overrideFile ?? 'override'} (merged over ${ref.runId}'s spec)`,
  );
  if (spec.checkpoint.storage !== base.checkpoint.storage) {
    throw new CliError(
      'fork: checkpoint.storage cannot change in a fork (the source checkpoint is read from the same storage)',
      2,
    );
  }
  const manager = await managerForRun(client, ref.runId);
  let checkpointId = ref.checkpointId;
  if (checkpointId) {
    const v = await manager.verify(checkpointId);
    if (!v.ok)
      throw new CliError(
        `checkpoint ${ref.runId}:${checkpointId} cannot be forked: ${v.problems.map((p) => p.reason).join('; ')}`,
        3,
      );
  } else {
    const latest = await manager.latestValid();
    if (!latest) throw new CliError(`run ${ref.runId} has no checkpoints to fork from`, 3);
    checkpointId = latest.manifest.id;
  }
  const runId = opts.runId ?? `${ref.runId}-fork-${Date.now().toString(36)}`;
  await startCommand(client, settings, out, {
    spec,
    runId,
    from: { runId: ref.runId, id: checkpointId },
    wait: opts.wait,
  });
}
