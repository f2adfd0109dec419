// The worker that records histories (record.ts): the real worker, whose checkpoint commits each take at least
// DURABLE_TRAIN_COMMIT_DELAY_MS longer. The small recording runs train in milliseconds; the delay keeps every chunk
// in flight long enough that a pause, stop, cancel or set-lr sent "mid-run" lands while a chunk runs, on any machine.
// The workflow code and the events it produces are the same as with a slow model.
import { failpointFromEnv, runWorker } from '../../cli/worker';

const delayMs = Number(process.env.DURABLE_TRAIN_COMMIT_DELAY_MS ?? 0);
const failpoint = failpointFromEnv();

runWorker({
  beforeManifest: async (step) => {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    await failpoint?.(step);
  },
}).catch((err) => {
  console.error(err);
  process.exit(1);
});
