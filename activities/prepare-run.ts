// The prepareRun activity: checks a run before its first chunk (spec, ids, the data's size, the store is writable) and
// says where it starts: resumed from its newest intact checkpoint, forked from another run's, or fresh. A run already
// trained to its end reports its final numbers instead of training again.
import { Context, log } from '@temporalio/activity';
import { formatProblems, NoValidCheckpointError, type CheckpointManager, type Manifest } from '../checkpoint';
import { builtinTrainRows, stepCounts } from '../spec/helpers';
import { idProblem } from '../spec/ids';
import { distributedProblem } from '../spec/schema';
import type { RunSpec } from '../spec/types';
import { Trainer } from '../training';
import { initBackend } from '../training/backend';
import { DatasetError } from '../training/data';
import { isConfigError } from '../training/errors';
import { loadTaskData } from '../training/task-data';
import { positionOf } from './chunk/commits';
import { layoutFor } from './chunk/resume-guards';
import { restoreTrainer } from './chunk/restore';
import { forkPlanOf, isDamagedOrMissing, rootedAt } from './chunk/start';
import { nonRetryable, storageUnavailable } from './failures';
import { specHash } from './fingerprint';
import { probeWritable } from './storage';
import { checkSpec, type TrainingDeps } from './training-deps';
import { FailureTypes, type CheckpointRef, type PrepareRunInput, type PrepareRunResult } from './types';

/** Training examples of the run's data: a built-in's from the spec, a file's by reading it (cached for training). */
async function trainRows(spec: RunSpec): Promise<number> {
  const rows = builtinTrainRows(spec);
  if (rows !== null) return rows;
  // Reading and decoding a large file takes longer than the heartbeat timeout; the decoding runs on a thread of its
  // own (training/data/decode-thread.ts), so the event loop is free to say the activity is alive meanwhile.
  const ctx = Context.current();
  const keepAlive = setInterval(() => ctx.heartbeat(), 5_000);
  try {
    return (await loadTaskData(spec)).train.n;
  } catch (err) {
    if (err instanceof DatasetError) throw nonRetryable(FailureTypes.InvalidSpec, err.message);
    throw err;
  } finally {
    clearInterval(keepAlive);
  }
}

export async function prepareRun(d: TrainingDeps, input: PrepareRunInput): Promise<PrepareRunResult> {
  const { metrics, runAlerts, managerFor, storeFor } = d;
  const spec = checkSpec(input.spec);
  // The run id becomes a path segment and an object key: the one id rule, named, instead of a storage error.
  const badId =
    idProblem(input.runId) ?? (input.from ? (idProblem(input.from.runId) ?? idProblem(input.from.id)) : null);
  if (badId) throw nonRetryable(FailureTypes.InvalidSpec, `invalid run or checkpoint id: ${badId}`);
  const hash = specHash(spec);
  const rows = await trainRows(spec);
  // A file dataset's size is known only now: the distributed block's fit to it is checked here.
  const distProblem = spec.distributed ? distributedProblem(spec.distributed, rows, spec.batchSize) : null;
  if (distProblem)
    throw nonRetryable(
      FailureTypes.InvalidSpec,
      `invalid spec: distributed.${distProblem.field}: ${distProblem.message}`,
    );
  const { stepsPerEpoch, totalSteps } = stepCounts(spec, rows);
  await probeWritable(storeFor(spec), input.runId, spec.checkpoint.storage);
  Context.current().heartbeat();
  const base = { totalSteps, stepsPerEpoch, specHash: hash };
  const own = managerFor(spec, input.runId);
  const from = input.from ?? null;
  if (from && from.runId === input.runId) {
    throw nonRetryable(FailureTypes.InvalidSpec, `run ${input.runId} cannot be forked into itself`);
  }

  // A run that already has checkpoints continues from them: restarting never starts over.
  const latest = await own.latestValid().catch((err: unknown) => {
    if (err instanceof NoValidCheckpointError) {
      // Checkpoints exist but none verifies: refuse to silently start over.
      throw nonRetryable(
        FailureTypes.NoValidCheckpoint,
        `run ${input.runId} has checkpoints but none is intact: ${err.message}`,
      );
    }
    throw storageUnavailable(err, `cannot list the checkpoints of run ${input.runId}`);
  });
  const skipped = (latest?.skipped ?? []).map((v) => ({ id: v.id, reason: formatProblems(v.problems) }));
  if (latest && skipped.length) {
    metrics.recovered(input.runId, 'damaged-fallback');
    runAlerts.damagedFallback(input.runId, skipped[0].id, latest.manifest.id, skipped[0].reason);
  }
  if (latest) {
    // A fork never writes into another run: an id whose checkpoints are not this fork's own is refused.
    if (from && !(await rootedAt(own, latest.manifest, from))) {
      throw nonRetryable(
        FailureTypes.InvalidSpec,
        `run ${input.runId} already exists with checkpoints of its own; a fork of ${from.runId}:${from.id} needs a new run id`,
      );
    }
    const fp = latest.manifest.fingerprints.spec;
    if (fp && fp !== hash) {
      log.warn('run continues with a changed spec', { runId: input.runId, checkpoint: latest.manifest.id });
    }
    const laid = { ...base, ...layoutFor(latest.manifest, spec, rows) };
    // Already trained to the end: report the final numbers from that checkpoint rather than train again.
    const finished = latest.manifest.step >= laid.totalSteps ? await finishedAt(own, spec, latest.manifest) : null;
    return { ...laid, start: positionOf(latest.manifest), mode: 'resume', skipped, finished };
  }
  if (from) {
    const { manifest, layout } = await forkStart(d, spec, input.sourceSpec, from, rows);
    return { ...base, ...layout, start: positionOf(manifest), mode: 'fork', skipped, finished: null };
  }
  // Build the model on the data once now, so a model that does not fit the data fails before any training. On the
  // worker's backend, chosen first: a model built while another activity's first choice is still initialising the
  // backend fails ("Backend 'wasm' has not yet been initialized").
  await initBackend();
  const probe = await Trainer.create(spec).catch((err: unknown) => {
    if (isConfigError(err)) throw nonRetryable(FailureTypes.InvalidSpec, (err as Error).message);
    throw err;
  });
  probe.dispose();
  return { ...base, start: null, mode: 'fresh', skipped, finished: null };
}

/** The final numbers of a run whose newest checkpoint is at its end, from that checkpoint. */
async function finishedAt(
  own: CheckpointManager,
  spec: RunSpec,
  manifest: Manifest,
): Promise<PrepareRunResult['finished']> {
  const backend = await initBackend();
  const loaded = await own.load(manifest.id);
  // Only read: the weights and the last evaluation, whatever backend the run computed on (a small model's may be
  // wasm on a tensorflow worker).
  const trainer = await restoreTrainer(readOnly(spec), backend, loaded.manifest, loaded.blobs);
  const st = trainer.state;
  const finished = {
    weightsSha256: trainer.weightsSha256(),
    lastEval: st.metrics.evals[st.metrics.evals.length - 1] ?? null,
    backend: loaded.manifest.backend.name,
  };
  trainer.dispose();
  return finished;
}

/**
 * A fork's start: the source checkpoint, verified, with steps left to train, and the fork's spec checked against it
 * (model, optimizer slots, data) now rather than at its first chunk.
 */
async function forkStart(
  d: TrainingDeps,
  spec: RunSpec,
  sourceSpec: RunSpec | null | undefined,
  from: CheckpointRef,
  rows: number,
): Promise<{ manifest: Manifest; layout: ReturnType<typeof layoutFor> }> {
  const plan = forkPlanOf(sourceSpec, spec);
  const src = d.managerFor(spec, from.runId);
  const check = await src.verify(from.id).catch((err: unknown) => {
    if (isDamagedOrMissing(err)) return { ok: false, problems: [{ reason: (err as Error).message }] };
    throw storageUnavailable(err, `cannot read fork source ${from.runId}:${from.id}`);
  });
  if (!check.ok) {
    throw nonRetryable(
      FailureTypes.CheckpointNotFound,
      `fork source ${from.runId}:${from.id} is missing or damaged: ${formatProblems(check.problems)}`,
    );
  }
  const loaded = await src.load(from.id);
  const layout = layoutFor(loaded.manifest, spec, rows);
  const totalSteps = layout?.totalSteps ?? stepCounts(spec, rows).totalSteps;
  if (loaded.manifest.step >= totalSteps) {
    throw nonRetryable(
      FailureTypes.NothingToTrain,
      `fork source ${from.runId}:${from.id} is at step ${loaded.manifest.step} and the fork's spec trains ${totalSteps} ` +
        `steps: nothing left to train (raise epochs to train on)`,
    );
  }
  // The backend is the first chunk's to check: it trains on the source's backend where the worker can follow it.
  const trainer = await restoreTrainer(readOnly(spec), await initBackend(), loaded.manifest, loaded.blobs, plan ?? {});
  trainer.dispose();
  return { manifest: loaded.manifest, layout };
}

/** The spec for a restore that computes nothing the run goes on with: any backend (and its gradient math) reads it. */
const readOnly = (spec: RunSpec): RunSpec => ({
  ...spec,
  resume: { ...spec.resume, allowBackendChange: true, allowNumericsChange: true },
});
