// Test-only: the change of extra-activity.ts made the safe way, behind patched(). Runs that started before the change
// replay exactly as recorded (patched() is false for them); new runs take the new path and record a marker.
import { patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { TrainingActivities } from '../../../activities/types';
import type { RunResult } from '../../../workflows/progress';
import { trainingWorkflow as released, type TrainingInput } from '../../../workflows/training';

const { applyRetention } = proxyActivities<TrainingActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30s',
  retry: { maximumAttempts: 3 },
});

export async function trainingWorkflow(input: TrainingInput): Promise<RunResult> {
  if (patched('retention-before-training')) {
    await applyRetention({ runId: workflowInfo().workflowId, spec: input.spec, protect: [] });
  }
  return released(input);
}
