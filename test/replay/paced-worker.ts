// A paced worker: the real worker, slowed down deterministically for tests that steer runs "mid-run".
// - DURABLE_TRAIN_COMMIT_DELAY_MS: each checkpoint commit takes at least this much longer (record.ts uses it: every
//   chunk stays in flight long enough that a pause, stop, cancel or set-lr lands while a chunk runs, on any machine).
// - DURABLE_TRAIN_STEP_DELAY_MS: each training step takes at least this much longer (the delay is awaited in the
//   trainer's onStep, so it is wall time only: the numbers are those of the unpaced worker).
// The workflow code and the events it produces are the same as with a slow model.
import { failpointFromEnv, runWorker } from '../../cli/worker';
import { Trainer } from '../../training/trainer';

// The pacing patches this process's Trainer: training stays here, not in supervised training processes.
process.env.DURABLE_TRAIN_TRAINER_PROCESS = '0';
const commitDelayMs = Number(process.env.DURABLE_TRAIN_COMMIT_DELAY_MS ?? 0);
const stepDelayMs = Number(process.env.DURABLE_TRAIN_STEP_DELAY_MS ?? 0);
const failpoint = failpointFromEnv();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

if (stepDelayMs > 0) {
  const train = Trainer.prototype.train;
  Trainer.prototype.train = function (this: Trainer, opts: Parameters<Trainer['train']>[0]) {
    return train.call(this, {
      ...opts,
      onStep: async (p) => {
        await sleep(stepDelayMs);
        await opts.onStep?.(p);
      },
    });
  };
}

runWorker({
  beforeManifest: async (step, runId) => {
    await sleep(commitDelayMs);
    await failpoint?.(step, runId);
  },
}).catch((err) => {
  console.error(err);
  process.exit(1);
});
