// The CLI in the test's own process: cli/program.ts's runCli (what `node dist/client.js` runs, and whose result is
// that process's exit code) with the cluster's environment and a working directory, its output captured. A spawned CLI
// process loads the whole command set first (seconds of CPU on a loaded machine); here it is loaded once. Tests check
// refusals, queries and starts this way, and keep a spawned `cli` where the process itself is what they check (its
// exit code and its whole stderr).
import { runCli } from '../../cli/program';
import type { CliResult, TestCluster } from './cluster';

// process.env and the working directory are the process's: one command at a time.
let queue: Promise<unknown> = Promise.resolve();

/**
 * Runs one command line in process, as `cli(cluster, args, opts)` runs it in a child: the cluster's environment with
 * `opts.env` over it (a variable set to undefined is removed), in `opts.cwd` (default the cluster's directory).
 * Both are restored afterwards. Commands that wait (`start --wait`) hold the others until they return.
 */
export function cliIn(
  cluster: TestCluster | null,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  const run = queue.then(() => runIn(cluster, args, opts));
  queue = run.catch(() => undefined);
  return run;
}

async function runIn(
  cluster: TestCluster | null,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv },
): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...cluster?.env, ...opts.env };
  const saved = new Map<string, string | undefined>();
  for (const key of Object.keys(env)) {
    if (process.env[key] === env[key]) continue;
    saved.set(key, process.env[key]);
    if (env[key] === undefined) delete process.env[key];
    else process.env[key] = env[key];
  }
  const cwd = process.cwd();
  process.chdir(opts.cwd ?? cluster?.dir ?? cwd);
  let stdout = '';
  let stderr = '';
  let code: number;
  try {
    code = await runCli(args, { out: (s) => (stdout += s), err: (s) => (stderr += s) });
  } finally {
    process.chdir(cwd);
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
  return {
    code,
    stdout,
    stderr,
    json<T>() {
      try {
        return JSON.parse(stdout) as T;
      } catch {
        throw new Error(`CLI output is not JSON (exit ${code}):\nstdout: ${stdout}\nstderr: ${stderr}`);
      }
    },
  };
}
