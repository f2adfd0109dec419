// Where a chunk starts: the trainer it continues, the checkpoint that trainer equals (the parent of the chunk's first
// commit), and whether that differs from what the workflow asked for (a recovery). One function, one answer.
import { ApplicationFailure, log } from '@temporalio/activity';
import {
  CheckpointCorruptError,
  CheckpointNotFoundError,
  type CheckpointManager,
  type CheckpointSummary,
  type Manifest,
} from '../../checkpoint';
import { planFork, type ForkPlan } from '../../spec/fork';
import type { RunSpec } from '../../spec/types';
import { SpecError } from '../../spec/validate';
import { Trainer } from '../../training';
import { loadTaskData } from '../../training/task-data';
import { isConfigError } from '../../training/errors';
import type { BackendInfo, BackendName } from '../../training/backend';
import { backendForNewRun } from '../../training/backend-choice';
import { nonRetryable, storageUnavailable } from '../failures';
import type { TrainingMetrics } from '../metrics';
import { FailureTypes, type CheckpointRef, type Recovery } from '../types';
import { restoreTrainer } from './restore';
import { spareOfLoaded, type SpareSnapshot } from '../commit';
import type { WarmTrainers } from './warm-cache';
import type { Restart } from '../trainer-process/protocol';
import type { RunAlerts } from './alerts';

export interface ChunkStart {
  trainer: Trainer;
  /** How the trainer was obtained. */
  source: 'warm' | 'restored' | 'fresh';
  /** The checkpoint the trainer's state equals (null for a fresh run): the parent of the chunk's first commit. */
  parent: CheckpointRef | null;
  /** Set when the chunk does not start from exactly the checkpoint the workflow asked for. */
  recovery: Recovery | null;
  /** A warm trainer's last snapshot (see WarmEntry). */
  spare?: SpareSnapshot;
  /** The backend the trainer computes on (the run's: see ChunkStartInput.useBackend). */
  backend: BackendInfo;
}

export interface ChunkStartInput {
  runId: string;
  spec: RunSpec;
  specHash: string;
  /** The checkpoint the workflow asked to start from. */
  from: CheckpointRef | null;
  /** The spec of the fork's source run, when `from` belongs to another run (the fork point). */
  sourceSpec?: RunSpec | null;
  attempt: number;
  /** Set when this attempt runs in a training process that replaced one that died in the same attempt. */
  restart?: Restart | null;
  /**
   * The backend to compute on for a run whose backend is `name` (null: a new run's, the process's default). A process
   * that follows runs' backends (ActivityDeps.useBackend) makes that one active, so a restored or warm run trains on
   * the one its checkpoints were written on; any other returns its one backend, and the restore's guard says whether
   * the run may change backend.
   */
  backendFor: (name: BackendName | null) => Promise<BackendInfo>;
  /** A new run's backend is chosen by the model's size (training/backend-choice.ts); else it is the process's default. */
  chooseBackend?: boolean;
  /** This run's checkpoints. */
  manager: CheckpointManager;
  /** Another run's checkpoints (a fork source), in the same storage. */
  managerOf: (runId: string) => CheckpointManager;
  warm: WarmTrainers;
  metrics: TrainingMetrics;
  /** Raises 'damaged-fallback', and counts the storage failures of a retry's reads toward 'save-failing'. */
  alerts?: RunAlerts;
}

/** A checkpoint that is missing or does not verify; anything else from storage means the storage itself failed. */
export const isDamagedOrMissing = (err: unknown) =>
  err instanceof CheckpointCorruptError || err instanceof CheckpointNotFoundError;

/** What the fork changes at its fork point; refuses (non-retryable, naming the field) what a fork cannot change. */
export function forkPlanOf(sourceSpec: RunSpec | null | undefined, spec: RunSpec): ForkPlan | null {
  if (!sourceSpec) return null;
  try {
    return planFork(sourceSpec, spec);
  } catch (err) {
    if (err instanceof SpecError) throw nonRetryable(FailureTypes.InvalidSpec, `fork: ${err.message}`);
    throw err;
  }
}

export async function resolveChunkStart(i: ChunkStartInput): Promise<ChunkStart> {
  i.alerts?.chunkStarted(i.runId, i.from?.runId === i.runId ? i.from.id : null);
  try {
    return await resolve(i);
  } catch (err) {
    // Storage that fails before the chunk can even start keeps the run from saving as much as a failed commit does.
    if (err instanceof ApplicationFailure && err.type === FailureTypes.StorageUnavailable) {
      i.alerts?.storageFailed(i.runId, i.from?.id ?? null, err.message);
    }
    throw err;
  }
}

async function resolve(i: ChunkStartInput): Promise<ChunkStart> {
  let from = i.from;
  let recovery: Recovery | null = null;
  if (i.attempt > 1 || i.restart) {
    // A retry, or a restart of a dead training process: continue from what was committed, not from the chunk's start.
    const { found, damaged } = await newestDescendant(i.manager, i.runId, from);
    const reason =
      (i.restart
        ? `training process restarted (${i.restart.count}) after: ${i.restart.cause}`
        : `retry of attempt ${i.attempt - 1}`) +
      (damaged.length ? `; skipped damaged checkpoint(s) ${damaged.join(', ')}` : '');
    if (damaged.length) {
      log.warn('skipped damaged checkpoints', { damaged });
      i.metrics.recovered(i.runId, 'damaged-fallback');
      i.alerts?.damagedFallback(
        i.runId,
        damaged[0],
        found?.id ?? from?.id ?? '(start)',
        `retry skipped ${damaged.join(', ')}`,
      );
    }
    recovery = { requested: from?.id ?? null, restoredFrom: found?.id ?? from?.id ?? null, reason, attempt: i.attempt };
    if (found) from = { runId: found.runId, id: found.id };
    i.metrics.recovered(i.runId, 'retry');
  }

  if (!from) {
    i.warm.drop(i.runId);
    try {
      const { trainer, backend } = await freshTrainer(i);
      return { trainer, source: 'fresh', parent: null, recovery, backend };
    } catch (err) {
      if (isConfigError(err)) throw nonRetryable(FailureTypes.InvalidSpec, (err as Error).message);
      throw err;
    }
  }
  if (from.runId === i.runId) {
    const warm = i.warm.take(i.runId, from.id, i.specHash);
    // A warm trainer continues only on the data it was trained on, checked on the bytes (a file edited while the run
    // was paused, even to the same size and time, is seen): otherwise it restores, behind the same guards as a cold
    // worker.
    if (warm && (await sameData(warm.trainer, i.spec))) {
      const backend = await i.backendFor(warm.trainer.info.backend as BackendName);
      return { trainer: warm.trainer, source: 'warm', parent: from, recovery, spare: warm.spare, backend };
    }
    warm?.trainer.dispose();
  } else i.warm.drop(i.runId);

  const own = from.runId === i.runId;
  const src = own ? i.manager : i.managerOf(from.runId);
  // The fork point: the first chunk of a fork restores its source's checkpoint with the fork's changes applied.
  const plan = own ? null : forkPlanOf(i.sourceSpec, i.spec);
  const restoreOpts = plan ?? {};
  const t0 = Date.now();
  let parent: CheckpointRef = from;
  let loaded: Awaited<ReturnType<CheckpointManager['load']>>;
  try {
    loaded = await src.load(from.id);
  } catch (err) {
    if (!isDamagedOrMissing(err)) throw storageUnavailable(err, `cannot read checkpoint ${from.runId}:${from.id}`);
    // Never load a damaged checkpoint: fall back to the newest valid one of this run before it, and say so.
    const fallback = own ? await fallbackFor(i.manager, from) : null;
    if (!fallback) {
      throw nonRetryable(
        FailureTypes.NoValidCheckpoint,
        `checkpoint ${from.runId}:${from.id} cannot be loaded (${(err as Error).message}) and no valid earlier checkpoint exists`,
      );
    }
    log.warn('checkpoint damaged; falling back', {
      requested: from.id,
      fallback: fallback.manifest.id,
      error: (err as Error).message,
    });
    recovery = {
      requested: from.id,
      restoredFrom: fallback.manifest.id,
      reason: `damaged checkpoint: ${(err as Error).message}`,
      attempt: i.attempt,
    };
    i.metrics.recovered(i.runId, 'damaged-fallback');
    i.alerts?.damagedFallback(i.runId, from.id, fallback.manifest.id, (err as Error).message);
    loaded = await i.manager.load(fallback.manifest.id).catch((e: unknown) => {
      throw isDamagedOrMissing(e)
        ? e
        : storageUnavailable(e, `cannot read checkpoint ${i.runId}:${fallback.manifest.id}`);
    });
    parent = { runId: i.runId, id: fallback.manifest.id };
  }
  const backend = await checkpointBackend(i, loaded.manifest.backend.name);
  const trainer = await restoreTrainer(i.spec, backend, loaded.manifest, loaded.blobs, restoreOpts);
  i.metrics.restored(i.runId, (Date.now() - t0) / 1000);
  if (plan) log.info('fork point', { runId: i.runId, from: `${from.runId}:${from.id}`, changed: plan.changed });
  // This run's checkpoint: the first commit copies into its buffers and stores only the rows changed since.
  const spare = parent.runId === i.runId ? spareOfLoaded(loaded.manifest, loaded.blobs) : undefined;
  return { trainer, source: 'restored', parent, recovery, spare, backend };
}

/**
 * A new run's trainer, on the backend chosen for it: built on the process's default, and again on wasm when the
 * model is small enough to train faster there (backend-choice.ts).
 */
async function freshTrainer(i: ChunkStartInput): Promise<{ trainer: Trainer; backend: BackendInfo }> {
  const backend = await i.backendFor(null);
  const trainer = await Trainer.create(i.spec);
  if (!i.chooseBackend) return { trainer, backend };
  const choice = backendForNewRun(backend.name, trainer.layersModel, i.spec.batchSize, true);
  if (choice.name === backend.name) return { trainer, backend };
  trainer.dispose();
  const use = i.backendFor;
  const chosen = await use(choice.name).then(
    (b) => {
      // On the worker's stderr, beside the line naming its backend: the run's own is chosen once, here.
      console.error(`durable-train: run ${i.runId} trains on ${b.name}: ${choice.reason}`);
      return b;
    },
    (err: unknown) => {
      log.warn(`run ${i.runId} stays on ${backend.name}: ${choice.name} failed to start`, { error: String(err) });
      return use(null);
    },
  );
  return { trainer: await Trainer.create(i.spec), backend: chosen };
}

/**
 * The backend for a checkpoint of the run written on `name` (ChunkStartInput.backendFor); one this process cannot
 * load gives way to the process's own (and the restore's guard says whether the run may change backend).
 */
async function checkpointBackend(i: ChunkStartInput, name: string): Promise<BackendInfo> {
  const use = i.backendFor;
  return use(name as BackendName).catch((err: unknown) => {
    log.warn(`run ${i.runId}'s checkpoints were written on ${name}, which this process cannot load`, {
      runId: i.runId,
      error: (err as Error).message,
    });
    return use(null);
  });
}

/** Whether the spec's data, read again, is the data the trainer holds (a failure to read: let the restore say why). */
async function sameData(trainer: Trainer, spec: RunSpec): Promise<boolean> {
  if (!('format' in spec.dataset)) return true; // built-in or registered: nothing on disk to change
  const data = await loadTaskData(spec).catch(() => null);
  return data !== null && data.fingerprint === trainer.info.datasetFingerprint;
}

/**
 * What to restore instead of `from`, a checkpoint of this run that is damaged or missing: the run's newest valid
 * checkpoint, if it is not past `from`'s step (null otherwise, or when there is none). Storage failures are retried.
 */
export async function fallbackFor(
  manager: CheckpointManager,
  from: CheckpointRef,
): Promise<Awaited<ReturnType<CheckpointManager['latestValid']>>> {
  const fallback = await manager.latestValid().catch(passDamaged);
  const requestedStep = await manager
    .readManifest(from.id)
    .then((m) => m.step)
    .catch((e: unknown) => {
      if (isDamagedOrMissing(e)) return Infinity;
      throw storageUnavailable(e, `cannot read checkpoint ${from.runId}:${from.id}`);
    });
  return fallback && fallback.manifest.step <= requestedStep ? fallback : null;
}

/** latestValid() for a fallback: damage means there is nothing to fall back to; a storage failure is retried. */
function passDamaged(err: unknown): null {
  if (err instanceof Error && err.name === 'NoValidCheckpointError') return null;
  throw storageUnavailable(err, 'cannot list checkpoints');
}

/**
 * The newest valid checkpoint of this run that descends from `from` (a previous attempt's commits), or null.
 * Lets a retry resume from what the crashed attempt committed even if its last heartbeat never reached the server.
 */
export async function newestDescendant(manager: CheckpointManager, runId: string, from: CheckpointRef | null) {
  const all = await manager.list().catch((err: unknown) => {
    throw storageUnavailable(err, 'cannot list checkpoints');
  });
  const byId = new Map(all.map((c) => [c.id, c]));
  const candidates = all
    .filter((c) => c.step > (from ? (byId.get(from.id)?.step ?? -1) : -1))
    .sort((a, b) => b.step - a.step);
  const damaged: string[] = [];
  for (const c of candidates) {
    if (c.valid === false && !c.untrusted) {
      damaged.push(c.id); // its manifest does not even parse (a refused signature is no damage: verify throws)
      continue;
    }
    if (!descendsFrom(c, from, runId, byId)) continue;
    const verified = await manager.verify(c.id).catch((err: unknown) => {
      throw storageUnavailable(err, `cannot verify checkpoint ${runId}:${c.id}`);
    });
    if (verified.ok) return { found: c, damaged };
    damaged.push(c.id);
  }
  return { found: null, damaged };
}

function descendsFrom(
  c: CheckpointSummary,
  from: CheckpointRef | null,
  runId: string,
  byId: Map<string, CheckpointSummary>,
): boolean {
  let cur: CheckpointSummary | undefined = c;
  for (let hops = 0; cur && hops < 10_000; hops++) {
    const parent: CheckpointRef | null = cur.parent;
    if ((from === null && parent === null) || (parent && from && parent.runId === from.runId && parent.id === from.id))
      return true;
    if (!parent || parent.runId !== runId) return false;
    cur = byId.get(parent.id);
  }
  return false;
}

/**
 * Whether this run's lineage starts at `from`: following parents from `latest` within the run, the first parent in
 * another run is `from`. A fork restarted under its own id continues; any other run with that id is not this fork.
 */
export async function rootedAt(manager: CheckpointManager, latest: Manifest, from: CheckpointRef): Promise<boolean> {
  const byId = new Map((await manager.list()).map((c) => [c.id, c]));
  let parent = latest.parent;
  for (let hops = 0; parent && hops < 100_000; hops++) {
    if (parent.runId !== latest.runId) return parent.runId === from.runId && parent.id === from.id;
    parent = byId.get(parent.id)?.parent ?? null;
  }
  return false;
}
