// `status RUN_ID`: where a run is, its last metrics and checkpoint; its result when finished. Epochs count from 1
// (the epoch the latest step belongs to), as in watch, checkpoints list and the report.
import type { Client } from '@temporalio/client';
import type { CheckpointPosition } from '../activities/types';
import { managerForRun } from './checkpoints';
import { EXIT, fmt, runStatus, viewRun, type Out } from './common';
import { epochOfStep } from './epoch';
import { evalLine } from './evals';
import { replicaLines, replicaRows } from './replicas';
import { describeResult } from './start';
import { defineCommand, RUN_ID_ARGUMENT } from './command';
import { connectClient } from './connection';

/**
 * The train metrics recorded in a checkpoint's manifest: what a closed run (no worker to ask, no heartbeat) still
 * has to show for its last steps.
 */
async function checkpointMetrics(
  client: Client,
  runId: string,
  ckpt: CheckpointPosition | null,
): Promise<{ metrics: Record<string, number> | null; error: string | null }> {
  if (!ckpt) return { metrics: null, error: null };
  try {
    const manager = await managerForRun(client, ckpt.runId === runId ? runId : ckpt.runId);
    return { metrics: (await manager.readManifest(ckpt.id)).metrics, error: null };
  } catch (err) {
    return { metrics: null, error: (err as Error).message };
  }
}

export async function statusCommand(client: Client, out: Out, runId: string): Promise<void> {
  const v = await viewRun(client, runId);
  const p = v.progress;
  const hb = v.heartbeat;
  const step = Math.max(hb?.step ?? 0, p?.step ?? 0, v.result?.step ?? 0);
  const totalSteps = p?.totalSteps ?? hb?.totalSteps ?? v.result?.totalSteps ?? null;
  const lastCheckpoint = p?.lastCheckpoint ?? v.result?.lastCheckpoint ?? null;
  // Live numbers come from the heartbeat or the progress query; a finished run has neither, so its final train
  // metrics are read from its last checkpoint.
  const live = hb?.loss ?? p?.loss ?? null;
  const stored = live === null ? await checkpointMetrics(client, runId, lastCheckpoint) : null;
  // The test split's last result: never a validation one (a run with a validation split evaluates test at its end).
  const test = p?.lastEval?.split === 'validation' ? null : p?.lastEval;
  const perEpoch = p?.stepsPerEpoch || (totalSteps && v.spec?.epochs ? totalSteps / v.spec.epochs : 0);
  const data = {
    runId,
    status: runStatus(v.status, p?.status ?? v.result?.status),
    workflowStatus: v.status,
    step,
    totalSteps,
    /** 1-based: the epoch the latest step belongs to. */
    epoch: perEpoch ? epochOfStep(step, perEpoch) : null,
    /** Epochs completed (the trainer's count). */
    epochsCompleted: hb?.epoch ?? p?.epoch ?? v.result?.epoch ?? null,
    loss: live ?? stored?.metrics?.loss ?? null,
    accuracy: hb?.accuracy ?? p?.accuracy ?? stored?.metrics?.accuracy ?? null,
    testAccuracy: test?.accuracy ?? v.result?.accuracy ?? null,
    testLoss: test?.loss ?? v.result?.loss ?? null,
    // Regression runs: test mean squared and mean absolute error instead of accuracy.
    testMse: test?.mse ?? v.result?.mse ?? null,
    testMae: test?.mae ?? v.result?.mae ?? null,
    // Runs with a validation split: its last evaluation, what the run's choices are made on.
    validation: p?.lastValidation ?? v.result?.validation ?? null,
    learningRate: hb?.learningRate ?? p?.learningRate ?? stored?.metrics?.learningRate ?? null,
    /** Where loss, accuracy and learningRate come from. */
    trainMetricsFrom: live !== null ? 'live' : stored?.metrics ? `checkpoint ${lastCheckpoint?.id}` : null,
    lastCheckpoint,
    recoveries: p?.recoveries ?? [],
    skippedCheckpoints: p?.skippedCheckpoints ?? [],
    result: v.result,
    failure: v.failure,
    lastDrill: p?.lastDrill ?? null,
    // Distributed runs: each replica's progress and the worker that holds it.
    replicas: replicaRows(v),
  };
  out.emit(data, () => {
    const lines = [
      `run ${runId}: ${data.status} (workflow ${v.status})`,
      `  step ${data.step}/${data.totalSteps ?? '?'}  epoch ${data.epoch ?? '-'}  loss ${fmt(data.loss)}  accuracy ${fmt(data.accuracy)}  lr ${data.learningRate ?? '-'}`,
      ...(data.validation ? [`  ${evalLine('validation', data.validation)}`] : []),
      data.testMse !== null
        ? `  test mse ${fmt(data.testMse)}  test mae ${fmt(data.testMae)}  test loss ${fmt(data.testLoss)}`
        : `  ${evalLine('test', { ...(test ?? v.result), mse: undefined, accuracy: data.testAccuracy, loss: data.testLoss })}`,
      `  last checkpoint ${data.lastCheckpoint?.id ?? '-'}`,
    ];
    if (data.trainMetricsFrom && data.trainMetricsFrom !== 'live')
      lines.splice(1, 0, `  (train metrics of the last step, from ${data.trainMetricsFrom})`);
    if (stored?.error) lines.push(`  (final train metrics unavailable: ${stored.error})`);
    lines.push(...replicaLines(data.replicas));
    if (data.recoveries.length)
      lines.push(
        `  recoveries: ${data.recoveries.map((r) => `step ${r.step}: ${r.reason} -> ${r.restoredFrom}`).join('; ')}`,
      );
    if (data.skippedCheckpoints.length)
      lines.push(
        `  skipped damaged checkpoints: ${data.skippedCheckpoints.map((s) => `${s.id} (${s.reason})`).join('; ')}`,
      );
    if (data.lastDrill)
      lines.push(
        `  last drill ${data.lastDrill.at}: ${data.lastDrill.verified ? 'verified' : `FAILED (${data.lastDrill.problem})`} ${data.lastDrill.checkpointId} -> ${data.lastDrill.comparedId}`,
      );
    if (v.result) lines.push(describeResult(v.result));
    if (v.failure) lines.push(`  failed: ${v.failure}`);
    if (!p && !v.result && v.status === 'RUNNING')
      lines.push('  (no worker answered the progress query; showing server-side state)');
    return lines.join('\n');
  });
}

export const statusDefinition = defineCommand({
  name: 'status',
  summary:
    "status (Temporal's when it failed), epoch, step, loss/accuracy (a finished run's from its last checkpoint), last checkpoint; the result",
  arguments: [RUN_ID_ARGUMENT],
  async run({ args, out }) {
    const runId = args.RUN_ID;
    await statusCommand(await connectClient(), out, runId);
    return EXIT.ok;
  },
});
