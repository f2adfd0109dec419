// The in-process exact-resume check: a run trained to its end, and the same run stopped after `breakAt` steps,
// snapshotted and restored, end with the same weights. Returns their weightsSha256.
import * as assert from 'node:assert/strict';
import type { RunSpec } from '../../spec/types';
import { Trainer } from '../../training';

export async function assertExactResume(
  spec: RunSpec,
  breakAt: number,
  check?: (uninterrupted: Trainer) => void,
): Promise<string> {
  const full = await Trainer.create(spec);
  let expected: string;
  try {
    while (!full.done) await full.train({ maxSteps: 1_000_000 });
    expected = full.weightsSha256();
    check?.(full);
  } finally {
    full.dispose();
  }
  const first = await Trainer.create(spec);
  let snap;
  try {
    await first.train({ maxSteps: breakAt });
    snap = first.snapshot();
  } finally {
    first.dispose();
  }
  const resumed = await Trainer.fromSnapshot(spec, snap);
  try {
    while (!resumed.done) await resumed.train({ maxSteps: 1_000_000 });
    assert.equal(resumed.weightsSha256(), expected, 'the resumed run ends with the uninterrupted weights');
  } finally {
    resumed.dispose();
  }
  return expected;
}
