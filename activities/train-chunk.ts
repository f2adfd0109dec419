// The trainChunk activity: continues the run's trainer (warm, restored or fresh) for a chunk of steps, heartbeating
// its position, and ends by committing a checkpoint: at the chunk's end, or where a pause, stop or cancel cut it.
// Returns a small summary; the trainer stays warm for the run's next chunk unless the run is done.
import { CancelledFailure, Context } from '@temporalio/activity';
import { initBackend } from '../training/backend';
import { ChunkCommits, positionOf } from './chunk/commits';
import { ChunkCurves } from './chunk/curves';
import { resolveChunkStart } from './chunk/start';
import { ChunkHeartbeats, summarize, trainWithHeartbeats } from './chunk/train';
import { specHash } from './fingerprint';
import { checkSpec, type TrainingDeps } from './training-deps';
import type { ChunkSummary, TrainChunkInput } from './types';

export async function trainChunk(d: TrainingDeps, input: TrainChunkInput): Promise<ChunkSummary> {
  const { warm, metrics, runAlerts, managerFor, storeFor } = d;
  const ctx = Context.current();
  const spec = checkSpec(input.spec);
  const hash = specHash(spec);
  const manager = managerFor(spec, input.runId);
  const t0 = Date.now();
  const { trainer, source, parent, recovery, spare, backend } = await resolveChunkStart({
    runId: input.runId,
    spec,
    specHash: hash,
    from: input.from,
    sourceSpec: input.sourceSpec,
    attempt: ctx.info.attempt,
    restart: d.restartOf?.(input.runId) ?? null,
    // A training process follows each run's backend; elsewhere the process's one backend serves every run.
    backendFor: d.useBackend ?? (() => initBackend()),
    chooseBackend: d.chooseBackend,
    manager,
    managerOf: (runId) => managerFor(spec, runId),
    warm,
    metrics,
    alerts: runAlerts,
  });
  try {
    const fromStep = trainer.state.step;
    if (input.learningRateOverride != null) trainer.setLearningRate(input.learningRateOverride);
    const curves = await ChunkCurves.open({
      store: storeFor(spec),
      runId: input.runId,
      spec,
      parent,
      fromStep,
      restored: source !== 'warm',
    });
    const commits = new ChunkCommits({
      runId: input.runId,
      manager,
      trainer,
      backend,
      specHash: hash,
      parent,
      everySeconds: spec.checkpoint.everySeconds ?? 0,
      metrics,
      alerts: runAlerts,
      curves,
      keepAlive: () => beats.again(),
      spare,
    });
    const beats = new ChunkHeartbeats(ctx, () => commits.lastCommitted);
    const { result, samplesPerSec } = await trainWithHeartbeats(ctx, beats, trainer, commits, input, spec, metrics);

    const details = ctx.cancellationDetails;
    if (ctx.cancellationSignal.aborted && (details?.notFound || details?.timedOut || details?.reset)) {
      // The server gave this attempt up (another attempt owns the run now): commit nothing more.
      await commits.drain();
      throw new CancelledFailure('attempt superseded');
    }
    const cut = ctx.cancellationSignal.aborted && !result.done;
    const reason = !cut
      ? 'chunk-end'
      : details?.workerShutdown
        ? 'worker-shutdown'
        : ((await d.cutReasonOf?.(input.runId).catch(() => null)) ?? input.cutReason ?? 'cancel');
    const final = await commits.commit(reason);
    const summary = summarize(trainer, result, {
      checkpoint: positionOf(final),
      fromStep,
      cut,
      samplesPerSec,
      backend: backend.name,
      commits: commits.count,
      source,
      recovery,
      trainMs: Date.now() - t0 - commits.ms,
      commitMs: commits.ms,
    });
    // A run that finished or was paused, stopped or cancelled trains no more here: drop its series and watches.
    runAlerts.chunkEnded(input.runId, trainer.done || cut);
    if (trainer.done || cut) metrics.runEnded(input.runId);
    if (trainer.done) trainer.dispose();
    else warm.put(input.runId, { trainer, checkpointId: final.id, specHash: hash, spare: commits.spareForNext });
    return summary;
  } catch (err) {
    trainer.dispose();
    throw err;
  }
}
