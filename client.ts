// Entry: the durable-train CLI. Thin: the commands (cli/commands.ts) parsed and run by cli/program.ts; this file only
// turns the outcome into the process's exit code.
import { EXIT } from './cli/common';
import { runCli } from './cli/program';

runCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  // runCli answers every error itself; this is a bug in it, said as any other unexpected error is.
  (err: unknown) => {
    process.stderr.write(`durable-train: ${String(err)}\n`);
    process.exit(EXIT.check);
  },
);
