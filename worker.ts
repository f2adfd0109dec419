// Entry: one Temporal worker (workflows + activities). Configuration from the environment.
import { CliError } from './cli/common';
import { runWorker } from './cli/worker';

runWorker().catch((err) => {
  // A connection problem is one clear line (what is wrong and what to set); anything else keeps its stack.
  if (err instanceof CliError) {
    console.error(`durable-train: ${err.message}`); // not "durable-train worker:", the ready line
    process.exit(err.exitCode);
  }
  console.error(err);
  process.exit(1);
});
