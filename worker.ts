// Entry: one Temporal worker (workflows + activities). Configuration from the environment.
import { runWorker } from './cli/worker';

runWorker().catch((err) => {
  console.error(err);
  process.exit(1);
});
