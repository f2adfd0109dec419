// Temporal adapters: join training/ (tfjs) and checkpoint/ (storage) with heartbeats, cancellation
// and failure types. Nothing here returns tensors or bytes: ids and small summaries only.
import { ApplicationFailure, CancelledFailure, Context, log } from '@temporalio/activity';
import type { RunSpec } from '../spec/types';
import { stepCounts, validateSpec, SpecError } from '../spec/validate';
import { Trainer } from '../training';
import { initBackend, type BackendInfo } from '../training/backend';
import {
  CheckpointManager,
  NoValidCheckpointError,
  CheckpointStoreError,
  openStore,
  type CheckpointStore,
  type CheckpointSummary,
  type Manifest,
} from '../checkpoint';
import {
  FailureTypes,
  type ChunkHeartbeat,
  type ChunkSummary,
  type CheckpointPointer,
  type CheckpointRef,
  type PrepareRunInput,
  type PrepareRunResult,
  type Recovery,
  type RetentionInput,
  type TrainChunkInput,
  type TrainingActivities,
} from './types';
import { commitTrainer, snapshotOf } from './commit';
import { specHash } from './fingerprint';
import { TrainingMetrics } from './metrics';

export interface ActivityDeps {
  /** Directory that relative file:// storage paths resolve against (default: the worker's cwd). */
  baseDir?: string;
  /** How many runs' trainers to keep warm in memory (default 2). */
  warmRuns?: number;
  /** Called between a commit's blobs and its manifest (crash tests kill the process here). */
  beforeManifest?: (step: number) => void | Promise<void>;
  /** Where commits, failures, recoveries and progress are counted (the worker serves them as /metrics). */
  metrics?: TrainingMetrics;
}

interface WarmEntry {
  trainer: Trainer;
  checkpointId: string;
  specHash: string;
}

const pointer = (m: Manifest): CheckpointPointer => ({ runId: m.runId, id: m.id, step: m.step, epoch: m.epoch });

function nonRetryable(type: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

export function createActivities(deps: ActivityDeps = {}): TrainingActivities {
  const warm = new Map<string, WarmEntry>();
  const metrics = deps.metrics ?? new TrainingMetrics();
  const maxWarm = deps.warmRuns ?? 2;
  const stores = new Map<string, CheckpointStore>();

  const storeFor = (spec: RunSpec): CheckpointStore => {
    const key = spec.checkpoint.storage;
    let store = stores.get(key);
    if (!store) {
      store = openStore(key, deps.baseDir ?? process.cwd());
      stores.set(key, store);
    }
    return store;
  };
  const managerFor = (spec: RunSpec, runId: string) =>
    new CheckpointManager(storeFor(spec), runId, { beforeManifest: deps.beforeManifest });

  const takeWarm = (runId: string): WarmEntry | undefined => {
    const entry = warm.get(runId);
    warm.delete(runId); // a running chunk owns its trainer; a concurrent attempt must never share it
    return entry;
  };
  const putWarm = (runId: string, entry: WarmEntry) => {
    warm.get(runId)?.trainer.dispose();
    warm.delete(runId);
    warm.set(runId, entry);
    while (warm.size > maxWarm) {
      const [oldest, e] = warm.entries().next().value as [string, WarmEntry];
      e.trainer.dispose();
      warm.delete(oldest);
    }
  };

  const checkSpec = (raw: RunSpec): RunSpec => {
    try {
      return validateSpec(raw);
    } catch (err) {
      if (err instanceof SpecError) throw nonRetryable(FailureTypes.InvalidSpec, err.message);
      throw err;
    }
  };

  /** Restores a trainer from a checkpoint, enforcing the resume guards. */
  async function restore(spec: RunSpec, backend: BackendInfo, manifest: Manifest, blobs: Map<string, Uint8Array>) {
    const snapshot = snapshotOf(manifest, blobs);
    if (manifest.backend.name !== backend.name && !spec.resume?.allowBackendChange) {
      throw nonRetryable(
        FailureTypes.ResumeGuard,
        `checkpoint ${manifest.id} was written on backend ${manifest.backend.name}, this worker runs ${backend.name}; ` +
          `results would not be bit-identical. Set resume.allowBackendChange or run a worker with DURABLE_TRAIN_BACKEND=${manifest.backend.name}`,
      );
    }
    const { stepsPerEpoch } = stepCounts(spec);
    if (snapshot.state.stepsPerEpoch !== stepsPerEpoch) {
      throw nonRetryable(
        FailureTypes.ResumeGuard,
        `checkpoint ${manifest.id} has ${snapshot.state.stepsPerEpoch} steps per epoch, the spec gives ${stepsPerEpoch}: ` +
          `dataset.trainLimit and batchSize cannot change when resuming`,
      );
    }
    let trainer: Trainer;
    try {
      trainer = await Trainer.fromSnapshot(spec, snapshot);
    } catch (err) {
      throw nonRetryable(
        FailureTypes.ResumeGuard,
        `cannot restore checkpoint ${manifest.id}: ${(err as Error).message}`,
      );
    }
    if (manifest.fingerprints.model && trainer.info.modelFingerprint !== manifest.fingerprints.model) {
      trainer.dispose();
      throw nonRetryable(FailureTypes.ResumeGuard, `checkpoint ${manifest.id} holds a different model topology`);
    }
    if (manifest.fingerprints.dataset !== trainer.info.datasetFingerprint && !spec.resume?.allowDatasetChange) {
      trainer.dispose();
      throw nonRetryable(
        FailureTypes.ResumeGuard,
        `checkpoint ${manifest.id} was trained on different data (dataset fingerprint ${manifest.fingerprints.dataset.slice(0, 12)} ` +
          `vs ${trainer.info.datasetFingerprint.slice(0, 12)}); set resume.allowDatasetChange to continue anyway`,
      );
    }
    return trainer;
  }

  /**
   * The newest valid checkpoint of this run that descends from `from` (a previous attempt's commits), or null.
   * Lets a retry resume from what the crashed attempt committed even if its last heartbeat never reached the server.
   */
  async function newestDescendant(manager: CheckpointManager, runId: string, from: CheckpointRef | null) {
    const all = await manager.list();
    const byId = new Map(all.map((c) => [c.id, c]));
    const candidates = all
      .filter((c) => c.step > (from ? (byId.get(from.id)?.step ?? -1) : -1))
      .sort((a, b) => b.step - a.step);
    const damaged: string[] = [];
    for (const c of candidates) {
      if (c.valid === false) {
        damaged.push(c.id); // its manifest does not even parse
        continue;
      }
      let cur: CheckpointSummary | undefined = c;
      let ok = false;
      for (let hops = 0; cur && hops < 10_000; hops++) {
        const parent: CheckpointRef | null = cur.parent;
        if (
          (from === null && parent === null) ||
          (parent && from && parent.runId === from.runId && parent.id === from.id)
        ) {
          ok = true;
          break;
        }
        if (!parent || parent.runId !== runId) break;
        cur = byId.get(parent.id);
      }
      if (!ok) continue;
      if ((await manager.verify(c.id)).ok) return { found: c, damaged };
      damaged.push(c.id);
    }
    return { found: null, damaged };
  }

  function commit(
    manager: CheckpointManager,
    trainer: Trainer,
    backend: BackendInfo,
    hash: string,
    parent: CheckpointRef | null,
    reason: string,
  ): Promise<Manifest> {
    return commitTrainer(manager, trainer, { backend, specHash: hash, parent, reason });
  }

  return {
    async prepareRun(input: PrepareRunInput): Promise<PrepareRunResult> {
      const spec = checkSpec(input.spec);
      const hash = specHash(spec);
      const { stepsPerEpoch, totalSteps } = stepCounts(spec);
      const store = storeFor(spec);
      const probe = `${input.runId}/.write-probe`;
      try {
        await store.writeAtomic(probe, new TextEncoder().encode(new Date().toISOString()));
        await store.delete(probe);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const msg = `checkpoint storage ${spec.checkpoint.storage} is not writable: ${(err as Error).message}`;
        // Permission problems do not heal by retrying: fail the run at once, loudly.
        const permanent = [
          'EACCES',
          'EROFS',
          'EPERM',
          'ENOTDIR',
          'AccessDenied',
          'NoSuchBucket',
          'InvalidAccessKeyId',
          'SignatureDoesNotMatch',
        ];
        if (permanent.includes(code ?? '') || (err instanceof CheckpointStoreError && !err.details.retryable)) {
          throw nonRetryable(FailureTypes.StorageUnavailable, msg);
        }
        throw ApplicationFailure.create({ type: FailureTypes.StorageUnavailable, message: msg });
      }
      Context.current().heartbeat();

      // A run that already has checkpoints continues from them: restarting never starts over.
      const own = managerFor(spec, input.runId);
      const latest = await own.latestValid().catch((err: unknown) => {
        if (err instanceof NoValidCheckpointError) {
          // Checkpoints exist but none verifies: refuse to silently start over.
          throw nonRetryable(
            FailureTypes.NoValidCheckpoint,
            `run ${input.runId} has checkpoints but none is intact: ${err.message}`,
          );
        }
        throw err;
      });
      const skipped = (latest?.skipped ?? []).map((v) => ({
        id: v.id,
        reason: v.problems.map((p) => (p.blob ? `${p.blob}: ${p.reason}` : p.reason)).join('; '),
      }));
      if (latest) {
        const fp = latest.manifest.fingerprints.spec;
        if (fp && fp !== hash) {
          log.warn('run continues with a changed spec', { runId: input.runId, checkpoint: latest.manifest.id });
        }
        let finished: PrepareRunResult['finished'] = null;
        if (latest.manifest.step >= totalSteps) {
          // Already trained to the end: report the final numbers from that checkpoint rather than train again.
          const backend = await initBackend();
          const loaded = await own.load(latest.manifest.id);
          const trainer = await restore(spec, backend, loaded.manifest, loaded.blobs);
          const st = trainer.state;
          finished = {
            weightsSha256: trainer.weightsSha256(),
            lastEval: st.metrics.evals[st.metrics.evals.length - 1] ?? null,
            backend: backend.name,
          };
          trainer.dispose();
        }
        return {
          start: pointer(latest.manifest),
          mode: 'resume',
          totalSteps,
          stepsPerEpoch,
          skipped,
          specHash: hash,
          finished,
        };
      }
      if (input.from) {
        const src = managerFor(spec, input.from.runId);
        const check = await src
          .verify(input.from.id)
          .catch((err: Error) => ({ ok: false, problems: [{ reason: err.message }] }));
        if (!check.ok) {
          throw nonRetryable(
            FailureTypes.CheckpointNotFound,
            `fork source ${input.from.runId}:${input.from.id} is missing or damaged: ${check.problems.map((p) => ('blob' in p && p.blob ? `${p.blob}: ` : '') + p.reason).join('; ')}`,
          );
        }
        const m = await src.readManifest(input.from.id);
        return { start: pointer(m), mode: 'fork', totalSteps, stepsPerEpoch, skipped, specHash: hash, finished: null };
      }
      return { start: null, mode: 'fresh', totalSteps, stepsPerEpoch, skipped, specHash: hash, finished: null };
    },

    async trainChunk(input: TrainChunkInput): Promise<ChunkSummary> {
      const ctx = Context.current();
      const spec = checkSpec(input.spec);
      const hash = specHash(spec);
      const backend = await initBackend();
      const manager = managerFor(spec, input.runId);
      const t0 = Date.now();

      let from = input.from;
      let recovery: Recovery | null = null;
      if (ctx.info.attempt > 1) {
        // A retry: continue from what the previous attempt committed, not from the chunk's start.
        const { found, damaged } = await newestDescendant(manager, input.runId, from);
        const reason =
          `retry of attempt ${ctx.info.attempt - 1}` +
          (damaged.length ? `; skipped damaged checkpoint(s) ${damaged.join(', ')}` : '');
        if (damaged.length) log.warn('skipped damaged checkpoints', { damaged });
        recovery = {
          requested: from?.id ?? null,
          restoredFrom: found?.id ?? from?.id ?? null,
          reason,
          attempt: ctx.info.attempt,
        };
        if (found) from = { runId: found.runId, id: found.id };
        metrics.recovered(input.runId, 'retry');
      }

      let trainer: Trainer;
      let source: ChunkSummary['source'];
      let parent: CheckpointRef | null = from;
      const entry = takeWarm(input.runId);
      if (from && entry && entry.checkpointId === from.id && from.runId === input.runId && entry.specHash === hash) {
        trainer = entry.trainer;
        source = 'warm';
      } else {
        entry?.trainer.dispose();
        if (!from) {
          trainer = await Trainer.create(spec);
          source = 'fresh';
        } else {
          const src = from.runId === input.runId ? manager : managerFor(spec, from.runId);
          let loaded: Awaited<ReturnType<CheckpointManager['load']>>;
          try {
            loaded = await src.load(from.id);
          } catch (err) {
            // Never load a damaged checkpoint: fall back to the newest valid one of this run, and say so.
            const fallback = from.runId === input.runId ? await manager.latestValid().catch(() => null) : null;
            if (
              !fallback ||
              fallback.manifest.step >
                (await src
                  .readManifest(from.id)
                  .then((m) => m.step)
                  .catch(() => Infinity))
            ) {
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
              attempt: ctx.info.attempt,
            };
            metrics.recovered(input.runId, 'damaged-fallback');
            loaded = await manager.load(fallback.manifest.id);
            parent = { runId: input.runId, id: fallback.manifest.id };
          }
          trainer = await restore(spec, backend, loaded.manifest, loaded.blobs);
          source = 'restored';
        }
      }

      const fromStep = trainer.state.step;
      if (input.learningRateOverride != null) trainer.setLearningRate(input.learningRateOverride);
      let lastCommitted: CheckpointPointer | null = null;
      let commits = 0;
      let commitMs = 0;
      let lastCommitAt = Date.now();
      const everyMs = (spec.checkpoint.everySeconds ?? 0) * 1000;
      let samplesPerSec = 0;
      let lastHeartbeat: ChunkHeartbeat | undefined;

      const doCommit = async (reason: string) => {
        const c0 = Date.now();
        let m: Manifest;
        try {
          m = await commit(manager, trainer, backend, hash, parent, reason);
        } catch (err) {
          metrics.commitFailed(input.runId);
          log.error('checkpoint commit failed', { runId: input.runId, error: (err as Error).message });
          throw err;
        }
        commitMs += Date.now() - c0;
        metrics.committed(
          input.runId,
          m.step,
          (Date.now() - c0) / 1000,
          m.blobs.reduce((n, b) => n + b.size, 0),
          reason,
        );
        commits += 1;
        lastCommitAt = Date.now();
        parent = { runId: m.runId, id: m.id };
        lastCommitted = pointer(m);
        return m;
      };

      // The chunk ends at input.steps or after spec.chunkSeconds of training, whichever comes first (at least one
      // step always runs). Where it ends does not change the numbers: the next chunk continues from its checkpoint.
      const deadline = Date.now() + spec.chunkSeconds * 1000;
      let result;
      try {
        result = await trainer.train({
          maxSteps: input.steps,
          shouldStop: () => ctx.cancellationSignal.aborted || Date.now() >= deadline,
          // Epoch-end evaluation can take a while: keep heartbeating (same details) so it is not taken for a dead worker.
          onEvalProgress: () => ctx.heartbeat(lastHeartbeat),
          onStep: async (p) => {
            samplesPerSec = p.samplesPerSec;
            const hb: ChunkHeartbeat = {
              step: p.step,
              totalSteps: p.totalSteps,
              epoch: p.epoch,
              loss: p.loss,
              accuracy: p.accuracy,
              learningRate: p.learningRate,
              samplesPerSec: p.samplesPerSec,
              lastCommitted,
            };
            lastHeartbeat = hb;
            metrics.progress(input.runId, p.step, p.samplesPerSec);
            ctx.heartbeat(hb);
            if (everyMs > 0 && Date.now() - lastCommitAt >= everyMs && p.step < p.totalSteps) {
              await doCommit('time');
              ctx.heartbeat({ ...hb, lastCommitted });
            }
          },
        });
      } catch (err) {
        trainer.dispose();
        throw err;
      }

      const details = ctx.cancellationDetails;
      if (ctx.cancellationSignal.aborted && (details?.notFound || details?.timedOut || details?.reset)) {
        // The server gave this attempt up (another attempt owns the run now): commit nothing.
        trainer.dispose();
        throw new CancelledFailure('attempt superseded');
      }
      const cut = ctx.cancellationSignal.aborted && !result.done;
      const reason = !cut ? 'chunk-end' : details?.workerShutdown ? 'worker-shutdown' : (input.cutReason ?? 'cancel');
      let final: Manifest;
      try {
        final = await doCommit(reason);
      } catch (err) {
        trainer.dispose();
        throw err;
      }
      const state = trainer.state;
      const summary: ChunkSummary = {
        checkpoint: pointer(final),
        fromStep,
        step: state.step,
        totalSteps: state.totalSteps,
        epoch: state.epoch,
        done: trainer.done,
        stepsRun: result.stepsRun,
        cut,
        loss: state.metrics.lastLoss,
        accuracy: state.metrics.lastAccuracy,
        learningRate: state.learningRate,
        evals: result.evals,
        lastEval: state.metrics.evals[state.metrics.evals.length - 1] ?? null,
        samplesPerSec,
        backend: backend.name,
        commits,
        source,
        recovery,
        weightsSha256: trainer.weightsSha256(),
        trainMs: Date.now() - t0 - commitMs,
        commitMs,
      };
      if (trainer.done) trainer.dispose();
      else putWarm(input.runId, { trainer, checkpointId: final.id, specHash: hash });
      return summary;
    },

    async applyRetention(input: RetentionInput): Promise<{ deleted: string[] }> {
      const spec = checkSpec(input.spec);
      const ck = spec.checkpoint;
      const manager = managerFor(spec, input.runId);
      const res = await manager.applyRetention(
        {
          keepLatest: ck.keepLatest,
          keepBest: ck.keepBest
            ? {
                k: ck.keepBest.k,
                metric: ck.keepBest.metric === 'accuracy' ? 'testAccuracy' : 'testLoss',
                mode: ck.keepBest.metric === 'accuracy' ? 'max' : 'min',
              }
            : undefined,
          keepEverySteps: ck.keepEverySteps,
        },
        input.protect,
      );
      return { deleted: res.deleted };
    },
  };
}
