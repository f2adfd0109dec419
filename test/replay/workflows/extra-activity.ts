// Test-only, for the negative replay test: an INCOMPATIBLE change of the training workflow. It runs one extra
// activity before the released workflow, unguarded, so every recorded history (which starts with prepareRun, or with
// the first chunk after a continue-as-new) disagrees with the commands this code issues: a DeterminismViolationError.
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { TrainingActivities } from '../../../activities/types';
import type { RunResult } from '../../../workflows/progress';
import { trainingWorkflow as released, type TrainingInput } from '../../../workflows/training';

const { applyRetention } = proxyActivities<TrainingActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30s',
  retry: { maximumAttempts: 3 },
});

export async function trainingWorkflow(input: TrainingInput): Promise<RunResult> {
  await applyRetention({ runId: workflowInfo().workflowId, spec: input.spec, protect: [] });
  return released(input);
}
