// `status RUN_ID`: where a run is, its last metrics and checkpoint; its result when finished.
import type { Client } from '@temporalio/client';
import { fmt, runStatus, viewRun, type Out } from './common';
import { replicaLines, replicaRows } from './replicas';
import { describeResult } from './start';

export async function statusCommand(client: Client, out: Out, runId: string): Promise<void> {
  const v = await viewRun(client, runId);
  const p = v.progress;
  const hb = v.heartbeat;
  const step = Math.max(hb?.step ?? 0, p?.step ?? 0, v.result?.step ?? 0);
  const data = {
    runId,
    status: runStatus(v.status, p?.status ?? v.result?.status),
    workflowStatus: v.status,
    step,
    totalSteps: p?.totalSteps ?? hb?.totalSteps ?? v.result?.totalSteps ?? null,
    epoch: hb?.epoch ?? p?.epoch ?? v.result?.epoch ?? null,
    loss: hb?.loss ?? p?.loss ?? null,
    accuracy: hb?.accuracy ?? p?.accuracy ?? null,
    testAccuracy: p?.lastEval?.accuracy ?? v.result?.accuracy ?? null,
    testLoss: p?.lastEval?.loss ?? v.result?.loss ?? null,
    // Regression runs: test mean squared and mean absolute error instead of accuracy.
    testMse: p?.lastEval?.mse ?? v.result?.mse ?? null,
    testMae: p?.lastEval?.mae ?? v.result?.mae ?? null,
    learningRate: hb?.learningRate ?? p?.learningRate ?? null,
    lastCheckpoint: p?.lastCheckpoint ?? v.result?.lastCheckpoint ?? null,
    recoveries: p?.recoveries ?? [],
    skippedCheckpoints: p?.skippedCheckpoints ?? [],
    result: v.result,
    failure: v.failure,
    // Distributed runs: each replica's progress and the worker that holds it.
    replicas: replicaRows(v),
  };
  out.emit(data, () => {
    const lines = [
      `run ${runId}: ${data.status} (workflow ${v.status})`,
      `  step ${data.step}/${data.totalSteps ?? '?'}  epoch ${data.epoch ?? '-'}  loss ${fmt(data.loss)}  accuracy ${fmt(data.accuracy)}  lr ${data.learningRate ?? '-'}`,
      data.testMse !== null
        ? `  test mse ${fmt(data.testMse)}  test mae ${fmt(data.testMae)}  test loss ${fmt(data.testLoss)}`
        : `  test accuracy ${fmt(data.testAccuracy)}  test loss ${fmt(data.testLoss)}`,
      `  last checkpoint ${data.lastCheckpoint?.id ?? '-'}`,
    ];
    lines.push(...replicaLines(data.replicas));
    if (data.recoveries.length)
      lines.push(
        `  recoveries: ${data.recoveries.map((r) => `step ${r.step}: ${r.reason} -> ${r.restoredFrom}`).join('; ')}`,
      );
    if (data.skippedCheckpoints.length)
      lines.push(
        `  skipped damaged checkpoints: ${data.skippedCheckpoints.map((s) => `${s.id} (${s.reason})`).join('; ')}`,
      );
    if (v.result) lines.push(describeResult(v.result));
    if (v.failure) lines.push(`  failed: ${v.failure}`);
    if (!p && !v.result && v.status === 'RUNNING')
      lines.push('  (no worker answered the progress query; showing server-side state)');
    return lines.join('\n');
  });
}
