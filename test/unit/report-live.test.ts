// Live views: watch's ETA and the one epoch numbering (1-based: the epoch the latest step belongs to).
import * as assert from 'node:assert/strict';
import type { RunView } from '../../cli/common';
import { epochOfCompleted, epochOfStep } from '../../cli/epoch';
import { etaSeconds, formatDuration, progressLine } from '../../cli/watch';
import type { RunSpec } from '../../spec';

function view(over: Partial<RunView>): RunView {
  return {
    runId: 'live',
    status: 'RUNNING',
    spec: { epochs: 3, batchSize: 50 } as RunSpec,
    progress: null,
    result: null,
    heartbeat: null,
    failure: null,
    pending: [],
    ...over,
  };
}

describe('live views', function () {
  it('numbers epochs from 1, the same from steps or from completed epochs', function () {
    // 10 steps per epoch.
    const cases: Array<[number, number, boolean, number]> = [
      // step, completed epochs, at an epoch end, shown
      [0, 0, false, 1],
      [1, 0, false, 1],
      [9, 0, false, 1],
      [10, 1, true, 1],
      [11, 1, false, 2],
      [20, 2, true, 2],
      [30, 3, true, 3],
    ];
    for (const [step, completed, atEnd, shown] of cases) {
      assert.equal(epochOfStep(step, 10), shown, `step ${step}`);
      assert.equal(epochOfCompleted(completed, atEnd), shown, `step ${step} from completed epochs`);
    }
  });

  it('watch shows the ETA at the current speed, and the 1-based epoch', function () {
    assert.equal(etaSeconds(10, 110, 500, 50), 10); // 100 steps of 50 examples at 500/s
    assert.equal(etaSeconds(10, 110, 0, 50), null);
    assert.equal(etaSeconds(10, 110, null, 50), null);
    assert.equal(formatDuration(42), '42s');
    assert.equal(formatDuration(185), '3m05s');
    assert.equal(formatDuration(3720), '1h02m');
    const hb = {
      step: 40,
      totalSteps: 120,
      epoch: 1,
      loss: 0.5,
      accuracy: 0.8,
      learningRate: 0.001,
      samplesPerSec: 100,
      lastCommitted: null,
    };
    const line = progressLine(view({ heartbeat: hb }));
    // 80 steps of 50 examples at 100 examples/s: 40 s. Step 40 of 40 per epoch is in epoch 1.
    assert.match(line, /step 40\/120 epoch 1\/3 .* ETA 40s /);
    assert.match(progressLine(view({ heartbeat: { ...hb, step: 41 } })), /epoch 2\/3 .* ETA 40s /);
    assert.match(progressLine(view({ heartbeat: { ...hb, samplesPerSec: 0 } })), / ETA - /);
  });
});
