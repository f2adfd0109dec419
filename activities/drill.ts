// The drill activity: rehearses a recovery on a live run's checkpoints without touching the run. It restores a
// checkpoint into a fresh trainer (never the workers' warm cache), through the manager's restore path that verifies
// every blob's hash, trains forward with the run's spec to the step of the next stored checkpoint, and compares the
// result with that checkpoint bit for bit. It reads the run's store and writes nothing to it.
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { ScheduleNotFoundError } from '@temporalio/client';
import {
  canonicalJson,
  CheckpointManager,
  CheckpointSignatureError,
  type CheckpointKeys,
  formatProblems,
  type CheckpointStore,
  type CheckpointSummary,
  type Manifest,
} from '../checkpoint';
import type { RunSpec } from '../spec/types';
import { SpecError, validateSpec } from '../spec/validate';
import { initBackend, type BackendInfo, type BackendName } from '../training/backend';
import { compareTensors, type StoredTensor } from '../training/compare';
import { isDamagedOrMissing } from './chunk/start';
import { restoreTrainer } from './chunk/restore';
import {
  DrillFailureTypes,
  type DrillActivities,
  type DrillDifference,
  type DrillInput,
  type DrillReport,
} from './drill-types';
import { chooseTarget } from './drill-plan';
import { nonRetryable, storageUnavailable } from './failures';
import { specHash } from './fingerprint';
import { storeCache } from './storage';
import { FailureTypes } from './types';

export interface DrillDeps {
  /** Directory that relative file:// storage paths resolve against (default: the worker's cwd). */
  baseDir?: string;
  /** Called with every drill's report (where the worker counts drills passed and failed, and the last one's time). */
  onReport?: (report: DrillReport) => void;
  /** Checkpoint signing keys: a drill refuses a checkpoint whose signature is missing or wrong, as a restore does. */
  keys?: CheckpointKeys;
  /** Makes a run's backend active (a worker that switches per run: see ActivityDeps.useBackend). */
  useBackend?: (name: BackendName | null) => Promise<BackendInfo>;
}

/** The later checkpoint's recorded learning-rate overrides (set-lr), as a replay must apply them. */
interface Override {
  step: number;
  learningRate: number;
}

function overridesOf(state: unknown): Override[] {
  const list = (state as { schedule?: { overrides?: unknown } } | null)?.schedule?.overrides;
  return Array.isArray(list)
    ? list.filter((o): o is Override => typeof o?.step === 'number' && typeof o?.learningRate === 'number')
    : [];
}

export function createDrillActivities(deps: DrillDeps = {}): DrillActivities {
  const openStoreOf = storeCache(deps.baseDir);
  const bound: DrillRunDeps = { ...deps, storeFor: (spec) => openStoreOf(spec.checkpoint.storage) };
  return {
    runDrill: (input) => runDrill(bound, input),
    removeDrillSchedule,
  };
}

/** What runDrill is given: the drill options and the worker's store of a spec's checkpoints (opened once per URL). */
export interface DrillRunDeps extends DrillDeps {
  storeFor(spec: RunSpec): CheckpointStore;
}

/** Rehearses a recovery of one of the run's checkpoints (see the top of this file); the report says what differed. */
export async function runDrill(deps: DrillRunDeps, input: DrillInput): Promise<DrillReport> {
  const ctx = Context.current();
  let spec: RunSpec;
  try {
    spec = validateSpec(input.spec);
  } catch (err) {
    if (err instanceof SpecError) throw nonRetryable(FailureTypes.InvalidSpec, err.message);
    throw err;
  }
  const { runId } = input;
  const manager = new CheckpointManager(deps.storeFor(spec), runId, { keys: deps.keys });
  const where = `run ${runId} (${manager.store.url})`;
  const all = await manager.list().catch((err: unknown) => {
    throw storageUnavailable(err, `cannot list the checkpoints of ${where}`);
  });
  if (!all.length) throw nonRetryable(DrillFailureTypes.NoCheckpoint, `${where} has no checkpoints to drill`);

  const { source, skipped } = await chooseSource(manager, all, input.checkpointId ?? null, where);
  const target = chooseTarget(all, source, input.steps ?? null, spec, where);
  const report: DrillReport = {
    runId,
    checkpoint: { id: source.id, step: source.step },
    compared: { id: target.id, step: target.step },
    restoreSeconds: 0,
    stepsReplayed: 0,
    fromStep: source.step,
    toStep: target.step,
    blobsCompared: 0,
    verified: false,
    differences: [],
    skipped,
    specChanged: false,
    backend: '',
    at: '',
  };
  const done = (r: DrillReport): DrillReport => {
    deps.onReport?.(r);
    return r;
  };
  const fail = (differences: DrillDifference[]): DrillReport =>
    done({ ...report, verified: false, differences, at: new Date().toISOString() });
  ctx.heartbeat({ phase: 'restore', checkpoint: source.id });

  // The restore a recovery would do: every blob read and its sha256 checked, then a fresh trainer.
  let backend = await initBackend();
  report.backend = backend.name;
  const t0 = performance.now();
  let loaded: Awaited<ReturnType<CheckpointManager['load']>>;
  try {
    loaded = await manager.load(source.id);
  } catch (err) {
    // A refused signature fails the drill (it is what a recovery would meet), naming the checkpoint.
    if (err instanceof CheckpointSignatureError)
      return fail([{ checkpointId: source.id, name: 'manifest', reason: err.message }]);
    if (!isDamagedOrMissing(err)) throw storageUnavailable(err, `cannot read checkpoint ${runId}:${source.id}`);
    await retryIfDeleted(manager, source.id);
    const e = err as Error & { blob?: string; reason?: string };
    return fail([{ checkpointId: source.id, name: e.blob ?? 'manifest', reason: e.reason ?? e.message }]);
  }
  report.specChanged = (loaded.manifest.fingerprints.spec ?? null) !== specHash(spec);
  // Where the worker follows each run's backend, the replay computes on the one the checkpoint was written on.
  if (deps.useBackend)
    backend = await deps.useBackend(loaded.manifest.backend.name as BackendName).catch(() => backend);
  report.backend = backend.name;
  const trainer = await restoreTrainer(spec, backend, loaded.manifest, loaded.blobs);
  loaded.blobs.clear();
  report.restoreSeconds = (performance.now() - t0) / 1000;
  try {
    // The compared checkpoint is read in full before training: retention may delete it while the drill trains.
    ctx.heartbeat({ phase: 'read', checkpoint: target.id });
    const stored = await readStored(manager, target.id);
    if ('problem' in stored || stored.damaged.length) await retryIfDeleted(manager, target.id);
    if ('problem' in stored) return fail([{ checkpointId: target.id, name: 'manifest', reason: stored.problem }]);

    // Train forward exactly as the run did, applying the user's learning-rate changes where it did.
    const before = new Set(overridesOf(loaded.manifest.state).map((o) => `${o.step}:${o.learningRate}`));
    const pending = overridesOf(stored.manifest.state)
      .filter((o) => o.step >= source.step && o.step < target.step && !before.has(`${o.step}:${o.learningRate}`))
      .sort((a, b) => a.step - b.step);
    while (trainer.state.step < target.step) {
      const step = trainer.state.step;
      while (pending.length && pending[0].step === step) trainer.setLearningRate(pending.shift()!.learningRate);
      const until = Math.min(target.step, pending[0]?.step ?? Infinity);
      const res = await trainer.train({
        maxSteps: until - step,
        shouldStop: () => ctx.cancellationSignal.aborted,
        onEvalProgress: () => ctx.heartbeat({ phase: 'train', step: trainer.state.step }),
        onStep: (p) => ctx.heartbeat({ phase: 'train', step: p.step, toStep: target.step }),
      });
      if (ctx.cancellationSignal.aborted) throw new CancelledFailure('drill cancelled');
      if (res.stepsRun === 0) break; // the spec ends training before the compared step
    }
    report.stepsReplayed = trainer.state.step - source.step;

    const snap = trainer.snapshot();
    report.blobsCompared = snap.tensors.length;
    const differences: DrillDifference[] = [
      ...stored.damaged.map((d) => ({ checkpointId: target.id, ...d })),
      ...compareTensors(snap.tensors, stored.tensors).map((d) => ({ checkpointId: target.id, ...d })),
      ...compareState(snap.state, stored.manifest.state).map((d) => ({ checkpointId: target.id, ...d })),
    ];
    if (differences.length) return fail(differences);
    return done({ ...report, verified: true, at: new Date().toISOString() });
  } finally {
    trainer.dispose();
  }
}

/** Deletes a drill schedule (the drill workflow's own, when its run has ended); false when it is gone already. */
export async function removeDrillSchedule({ scheduleId }: { scheduleId: string }): Promise<boolean> {
  try {
    await Context.current().client.schedule.getHandle(scheduleId).delete();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

/**
 * A checkpoint that vanished while the drill read it was deleted by the run's retention (manifest first, then its
 * blobs), not damaged: the attempt fails retryably and the next one chooses again, rather than report damage.
 */
async function retryIfDeleted(manager: CheckpointManager, id: string): Promise<void> {
  const exists = await manager.store.exists(manager.manifestKey(id)).catch((err: unknown) => {
    throw storageUnavailable(err, `cannot read checkpoint ${manager.runId}:${id}`);
  });
  if (!exists)
    throw ApplicationFailure.retryable(
      `checkpoint ${manager.runId}:${id} was deleted (retention) while the drill read it; choosing again`,
      'CheckpointDeletedDuringDrill',
    );
}

/** The checkpoint to restore: the one asked for, or the newest intact one with a later checkpoint after it. */
async function chooseSource(
  manager: CheckpointManager,
  all: CheckpointSummary[],
  asked: string | null,
  where: string,
): Promise<{ source: CheckpointSummary; skipped: DrillReport['skipped'] }> {
  if (asked) {
    const source = all.find((c) => c.id === asked);
    if (!source)
      throw nonRetryable(
        FailureTypes.CheckpointNotFound,
        `${where} has no checkpoint ${asked} (it has ${all.map((c) => c.id).join(', ')})`,
      );
    return { source, skipped: [] };
  }
  const newest = Math.max(...all.map((c) => c.step));
  const candidates = all.filter((c) => c.step < newest && c.valid !== false).reverse();
  if (!candidates.length)
    throw nonRetryable(
      DrillFailureTypes.NoLaterCheckpoint,
      `${where} has no checkpoint with a later one to compare against (checkpoints: ${all.map((c) => c.id).join(', ')})`,
    );
  const skipped: DrillReport['skipped'] = [];
  for (const c of candidates) {
    const v = await manager.verify(c.id).catch((err: unknown) => {
      // A refused signature is skipped like damage here; drilled anyway when nothing else is left, it fails by name.
      if (err instanceof CheckpointSignatureError) return { ok: false as const, problems: [], refused: err.message };
      throw storageUnavailable(err, `cannot verify checkpoint ${manager.runId}:${c.id}`);
    });
    if (v.ok) return { source: c, skipped };
    skipped.push({ id: c.id, reason: 'refused' in v ? v.refused : formatProblems(v.problems) });
  }
  // None verifies: drill the newest of them, so that the report names its damage.
  return { source: candidates[0], skipped: skipped.slice(1) };
}

/**
 * The compared checkpoint as stored: its manifest, and every blob's bytes as they are on storage (not only when they
 * verify: a damaged blob is reported as damaged and still compared, so the report says which element differs).
 */
async function readStored(
  manager: CheckpointManager,
  id: string,
): Promise<
  | { manifest: Manifest; tensors: StoredTensor[]; damaged: Array<{ name: string; reason: string }> }
  | { problem: string }
> {
  let manifest: Manifest;
  try {
    manifest = await manager.readManifest(id);
  } catch (err) {
    if (isDamagedOrMissing(err)) return { problem: (err as Error).message };
    throw storageUnavailable(err, `cannot read checkpoint ${manager.runId}:${id}`);
  }
  const tensors: StoredTensor[] = [];
  const damaged: Array<{ name: string; reason: string }> = [];
  for (const b of manifest.blobs) {
    let read: Awaited<ReturnType<CheckpointManager['readBlob']>>;
    try {
      read = await manager.readBlob(b);
    } catch (err) {
      throw storageUnavailable(err, `cannot read checkpoint ${manager.runId}:${id}`);
    }
    if (read.problem) damaged.push({ name: b.name, reason: `stored blob does not verify: ${read.problem}` });
    if (read.data) tensors.push({ name: b.name, dtype: b.dtype, shape: b.shape, data: read.data });
  }
  return { manifest, tensors, damaged };
}

/** The JSON training state (counters, PRNG, schedule, metrics), field by field. */
function compareState(actual: unknown, stored: unknown): Array<{ name: string; reason: string }> {
  const a = (actual ?? {}) as Record<string, unknown>;
  const s = (stored ?? {}) as Record<string, unknown>;
  const out: Array<{ name: string; reason: string }> = [];
  for (const key of [...new Set([...Object.keys(a), ...Object.keys(s)])].sort()) {
    const x = canonicalJson(a[key] ?? null);
    const y = canonicalJson(s[key] ?? null);
    if (x !== y) {
      const short = (v: string) => (v.length > 80 ? `${v.slice(0, 77)}...` : v);
      out.push({ name: `state.${key}`, reason: `replayed ${short(x)}, stored ${short(y)}` });
    }
  }
  return out;
}
