// `fork --from RUN_ID[:CKPT] --spec-override FILE [--run-id NEW] [--wait]`: a new run from any checkpoint.
import * as fs from 'node:fs';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { planFork, mergeForkSpec } from '../spec/fork';
import { SpecError, stepCounts, validateSpec, type RunSpec } from '../spec';
import { builtinTrainRows } from '../spec/helpers';
import { checkpointIdArg, CliError, EXIT, runIdArg, type Out } from './common';
import { formatProblems, type Manifest } from '../checkpoint';
import { layoutFor, stepsPerEpochProblem } from '../activities/chunk/resume-guards';
import { managerForRun } from './checkpoints';
import { connectClient, temporalSettings, type TemporalSettings } from './connection';
import { startCommand } from './start';
import { defineCommand } from './command';

export function parseRunRef(ref: string): { runId: string; checkpointId?: string } {
  const i = ref.indexOf(':');
  if (i === 0 || ref === '') throw new CliError(`expected RUN_ID[:CKPT], got ${JSON.stringify(ref)}`, EXIT.usage);
  const runId = runIdArg(i < 0 ? ref : ref.slice(0, i));
  const checkpointId = i < 0 ? undefined : ref.slice(i + 1) || undefined;
  return { runId, checkpointId: checkpointId === undefined ? undefined : checkpointIdArg(checkpointId) };
}

export async function sourceSpec(client: Client, runId: string): Promise<RunSpec> {
  try {
    const d = await client.workflow.getHandle(runId).describe();
    const spec = d.memo?.spec as RunSpec | undefined;
    if (!spec) throw new CliError(`run ${runId} has no spec memo`, EXIT.usage);
    return spec;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new CliError(`no run ${runId}`, EXIT.notFound);
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
    throw new CliError(`cannot read spec override ${file}: ${(err as Error).message}`, EXIT.usage);
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
    if (err instanceof SpecError) throw new CliError(`fork: ${where}: ${err.message}`, EXIT.usage);
    throw err;
  }
  // A fork never writes into another run: its id must be new.
  const runId = opts.runId ?? `${ref.runId}-fork-${Date.now().toString(36)}`;
  if (await runExists(client, runId)) {
    throw new CliError(
      `fork: run ${runId} already exists; choose a new --run-id (a fork never writes into another run)`,
      EXIT.usage,
    );
  }
  const manager = await managerForRun(client, ref.runId);
  let checkpointId = ref.checkpointId;
  let manifest: Manifest;
  if (checkpointId) {
    const v = await manager.verify(checkpointId);
    if (!v.ok)
      throw new CliError(
        `checkpoint ${ref.runId}:${checkpointId} cannot be forked: ${formatProblems(v.problems)}`,
        EXIT.notFound,
      );
    manifest = await manager.readManifest(checkpointId);
  } else {
    const latest = await manager.latestValid();
    if (!latest) throw new CliError(`run ${ref.runId} has no checkpoints to fork from`, EXIT.notFound);
    checkpointId = latest.manifest.id;
    manifest = latest.manifest;
  }
  const step = manifest.step;
  // A file dataset's step count is known once a worker reads it; the worker refuses that case the same way.
  const rows = builtinTrainRows(spec);
  // Another replica count is refused here unless the spec allows it (and the epoch under way can be shared out).
  const problem = stepsPerEpochProblem(manifest, spec, rows);
  if (problem) throw new CliError(`fork: ${where}: ${problem}`, EXIT.usage);
  const totalSteps =
    rows === null ? Infinity : (layoutFor(manifest, spec, rows)?.totalSteps ?? stepCounts(spec, rows).totalSteps);
  if (step >= totalSteps) {
    throw new CliError(
      `fork: checkpoint ${ref.runId}:${checkpointId} is at step ${step} and the fork trains ${totalSteps} steps: ` +
        `nothing left to train (set a larger "epochs" in the override)`,
      EXIT.usage,
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

export const forkDefinition = defineCommand({
  name: 'fork',
  summary:
    'a new run from any checkpoint (default: the newest valid) with changed hyperparameters; `{}` changes nothing and reproduces the original weights',
  options: [
    { name: 'from', value: 'RUN_ID[:CKPT]', required: true, description: 'the run (and checkpoint) to start from' },
    { name: 'spec-override', value: 'FILE', description: "JSON merged over the source run's spec" },
    {
      name: 'run-id',
      value: 'NEW',
      description: 'the new run id (default: RUN_ID-fork-<time>); never an existing run',
    },
    { name: 'wait', description: 'wait for the run to finish and print its result' },
  ],
  async run({ opts, out }) {
    if (opts['run-id'] !== undefined) runIdArg(opts['run-id']);
    const settings = temporalSettings();
    await forkCommand(await connectClient(settings), settings, out, {
      from: opts.from,
      overrideFile: opts['spec-override'],
      runId: opts['run-id'],
      wait: opts.wait,
    });
    return EXIT.ok;
  },
});
