// A small checkpoint for tests of the checkpoint layer: two float32 blobs whose content depends on the step.
import type { CommitInput } from '../../checkpoint';

export const f32 = (...values: number[]) => new Uint8Array(new Float32Array(values).buffer);

/** What CheckpointManager.commit takes for step `step` (a 2x2 `w` and a 1-value `b`), with `extra` fields replaced. */
export function commitInput(step: number, extra: Partial<CommitInput> = {}): CommitInput {
  return {
    step,
    epoch: 0,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
    parent: null,
    blobs: [
      { name: 'w', dtype: 'float32', shape: [2, 2], data: f32(step, 1, 2, 3) },
      { name: 'b', dtype: 'float32', shape: [1], data: f32(0.5) },
    ],
    state: { step },
    metrics: { loss: 1 / (step + 1) },
    fingerprints: { spec: 's' },
    backend: { name: 'cpu', version: '0' },
    ...extra,
  };
}
