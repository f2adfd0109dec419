// Entry: the durable-train CLI. Thin: parses arguments, then calls the cli/ commands.
import { parseArgs } from 'node:util';
import { CliError, loadSpecFile, output } from './cli/common';
import { connectClient, temporalSettings } from './cli/connection';
import { checkpointsList, checkpointsShow, checkpointsVerify, managerForRun } from './cli/checkpoints';
import { startDevServer } from './cli/dev-server';
import { mainCommand } from './cli/main';
import { startCommand } from './cli/start';
import { statusCommand } from './cli/status';
import { watchRun } from './cli/watch';
import { runWorker } from './cli/worker';
import { cancelCommand, setLrCommand, signalCommand } from './cli/control';
import { forkCommand } from './cli/fork';
import { lineageCommand, runsListCommand } from './cli/runs';
import { exportCommand } from './cli/export';
import { reportCommand } from './cli/report';
import { healthCommand } from './cli/health';

const USAGE = `durable-train: train TensorFlow.js models as durable Temporal workflows

usage: durable-train <command> [options]            (every command takes --json)

  main [--spec FILE] [--run-id ID] [--port P] [--ui-port P] [--db FILE]
                                         dev server + worker + the default MNIST CNN run (what \`npm start\` runs)
  dev-server [--port 7233] [--ui-port 8233] [--db FILE] [--headless]
  worker                                 a worker on DURABLE_TRAIN_TASK_QUEUE (default durable-train)
  start --spec FILE [--run-id ID] [--wait]
  status RUN_ID
  watch RUN_ID
  checkpoints list RUN_ID [--verify] [--storage URL]
  checkpoints verify RUN_ID [CKPT] [--storage URL]
  checkpoints show RUN_ID CKPT [--storage URL]
  pause RUN_ID | resume RUN_ID | stop RUN_ID
  set-lr RUN_ID VALUE                    validated; applies from the next chunk, recorded in checkpoints and history
  cancel RUN_ID                          Temporal cancellation (the running chunk checkpoints first)
  fork --from RUN_ID[:CKPT] [--spec-override FILE] [--run-id NEW] [--wait]
  lineage RUN_ID
  runs list
  health RUN_ID [--max-age SECONDS]      exit 1 when the newest checkpoint is damaged or stale, or the run failed
  export RUN_ID[:CKPT] --out DIR [--include-optimizer] [--force] [--storage URL]   TF.js Layers model (+ optimizer slots)
  report RUN_ID --out FILE.html [--png FILE.png] [--force] [--verify] [--storage URL]   curves, checkpoints, recoveries, spec

environment: TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE (default default),
  DURABLE_TRAIN_TASK_QUEUE, DURABLE_TRAIN_BACKEND (auto|tensorflow|wasm|cpu), TEMPORAL_CLI_PATH`;

const options = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  spec: { type: 'string' },
  'run-id': { type: 'string' },
  wait: { type: 'boolean' },
  port: { type: 'string' },
  'ui-port': { type: 'string' },
  db: { type: 'string' },
  headless: { type: 'boolean' },
  verify: { type: 'boolean' },
  storage: { type: 'string' },
  from: { type: 'string' },
  'spec-override': { type: 'string' },
  out: { type: 'string' },
  'include-optimizer': { type: 'boolean' },
  force: { type: 'boolean' },
  png: { type: 'string' },
  'max-age': { type: 'string' },
} as const;

function intOption(value: string | undefined, name: string, dflt: number): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0 || n > 65535)
    throw new CliError(`--${name} must be a port number, got ${value}`, 2);
  return n;
}

async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${USAGE}`, 2);
  }
  const { values: v, positionals: pos } = parsed;
  const [command, ...rest] = pos;
  const out = output(Boolean(v.json));
  const need = (n: number, what: string) => {
    if (rest.length < n) throw new CliError(`${command}: missing ${what}\n\n${USAGE}`, 2);
  };
  if (v.help || !command) {
    process.stdout.write(USAGE + '\n');
    return command || v.help ? 0 : 2;
  }
  switch (command) {
    case 'main':
      return mainCommand(out, {
        specFile: v.spec,
        runId: v['run-id'],
        port: v.port ? intOption(v.port, 'port', 7233) : undefined,
        uiPort: v['ui-port'] ? intOption(v['ui-port'], 'ui-port', 8233) : undefined,
        db: v.db,
      });
    case 'dev-server': {
      const server = await startDevServer({
        port: intOption(v.port, 'port', 7233),
        uiPort: intOption(v['ui-port'], 'ui-port', intOption(v.port, 'port', 7233) + 1000),
        db: v.db,
        headless: v.headless,
        log: 'inherit',
      });
      out.emit(
        { address: server.address, uiUrl: server.uiUrl, db: server.db, pid: server.pid },
        () =>
          `Temporal dev server at ${server.address}${server.uiUrl ? `, Web UI ${server.uiUrl}` : ''}, SQLite ${server.db}\nCtrl-C to stop`,
      );
      const stop = () => void server.stop();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const code = await server.exited;
      return code ?? 0;
    }
    case 'worker':
      await runWorker();
      return 0;
    case 'start': {
      if (!v.spec) throw new CliError('start: --spec FILE is required', 2);
      const spec = loadSpecFile(v.spec); // validated before anything is started
      const settings = temporalSettings();
      const client = await connectClient(settings);
      await startCommand(client, settings, out, { spec, runId: v['run-id'], wait: v.wait });
      return 0;
    }
    case 'status': {
      need(1, 'RUN_ID');
      await statusCommand(await connectClient(), out, rest[0]);
      return 0;
    }
    case 'watch': {
      need(1, 'RUN_ID');
      const result = await watchRun(await connectClient(), out, rest[0]);
      return result ? 0 : 1;
    }
    case 'checkpoints': {
      const [sub, runId, ckpt] = rest;
      if (!sub || !runId) throw new CliError('checkpoints: usage: checkpoints list|verify|show RUN_ID [CKPT]', 2);
      const client = v.storage ? null : await connectClient();
      const manager = await managerForRun(client, runId, v.storage);
      if (sub === 'list') await checkpointsList(manager, out, { verify: v.verify });
      else if (sub === 'verify') return checkpointsVerify(manager, out, ckpt);
      else if (sub === 'show') {
        if (!ckpt) throw new CliError('checkpoints show: missing CKPT', 2);
        await checkpointsShow(manager, out, ckpt);
      } else throw new CliError(`checkpoints: unknown subcommand ${sub} (list, verify, show)`, 2);
      return 0;
    }
    case 'pause':
    case 'resume':
    case 'stop':
      need(1, 'RUN_ID');
      await signalCommand(await connectClient(), out, rest[0], command);
      return 0;
    case 'set-lr':
      need(2, 'RUN_ID VALUE');
      await setLrCommand(await connectClient(), out, rest[0], rest[1]);
      return 0;
    case 'cancel':
      need(1, 'RUN_ID');
      await cancelCommand(await connectClient(), out, rest[0]);
      return 0;
    case 'fork': {
      if (!v.from) throw new CliError('fork: --from RUN_ID[:CKPT] is required', 2);
      const settings = temporalSettings();
      await forkCommand(await connectClient(settings), settings, out, {
        from: v.from,
        overrideFile: v['spec-override'],
        runId: v['run-id'],
        wait: v.wait,
      });
      return 0;
    }
    case 'lineage':
      need(1, 'RUN_ID');
      await lineageCommand(await connectClient(), out, rest[0]);
      return 0;
    case 'runs':
      if (rest[0] !== 'list') throw new CliError('runs: usage: runs list', 2);
      await runsListCommand(await connectClient(), out);
      return 0;
    case 'health': {
      need(1, 'RUN_ID');
      const maxAge = v['max-age'] === undefined ? 600 : Number(v['max-age']);
      if (!Number.isFinite(maxAge) || maxAge <= 0)
        throw new CliError(`--max-age must be a positive number of seconds`, 2);
      return healthCommand(await connectClient(), out, rest[0], { maxAgeSeconds: maxAge, storage: v.storage });
    }
    case 'export':
      need(1, 'RUN_ID[:CKPT]');
      await exportCommand(await connectClient(), out, {
        ref: rest[0],
        out: v.out,
        includeOptimizer: v['include-optimizer'],
        force: v.force,
        storage: v.storage,
      });
      return 0;
    case 'report':
      need(1, 'RUN_ID');
      await reportCommand(await connectClient(), out, {
        runId: rest[0],
        out: v.out,
        png: v.png,
        force: v.force,
        storage: v.storage,
        verify: v.verify,
      });
      return 0;
    default:
      throw new CliError(`unknown command ${command}\n\n${USAGE}`, 2);
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`durable-train: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`durable-train: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
