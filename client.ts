// Entry: the durable-train CLI. Thin: parses arguments, then calls the cli/ commands.
import { parseArgs } from 'node:util';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { CheckpointNotFoundError } from './checkpoint';
import { SpecError } from './spec';
import { InvalidIdError } from './spec/ids';
import {
  checkpointIdArg,
  CliError,
  EXIT,
  loadSpecFile,
  output,
  rootCause,
  runIdArg,
  runIdForSpecFile,
} from './cli/common';
import { connectClient, temporalSettings } from './cli/connection';
import { checkpointsList, checkpointsShow, checkpointsSign, checkpointsVerify, managerForRun } from './cli/checkpoints';
import { startDevServer } from './cli/dev-server';
import { mainCommand } from './cli/main';
import { assertStorageOpens, startCommand } from './cli/start';
import { statusCommand } from './cli/status';
import { watchRun } from './cli/watch';
import { runWorker, slotsOption } from './cli/worker';
import { cancelCommand, parseLearningRate, setLrCommand, signalCommand } from './cli/control';
import { forkCommand } from './cli/fork';
import { lineageCommand, runsListCommand } from './cli/runs';
import { exportCommand, exportRef } from './cli/export';
import { evaluateCommand, splitArg } from './cli/evaluate';
import { predictCommand } from './cli/predict';
import { reportCommand } from './cli/report';
import { healthCommand } from './cli/health';
import { codecServerCommand } from './cli/codec-server';
import { CodecKeyError } from './codec';
import * as drill from './cli/drill';

const USAGE = `durable-train: train TensorFlow.js models as durable Temporal workflows

usage: durable-train <command> [options]            (every command takes --json)

  main [--spec FILE] [--run-id ID] [--port P] [--ui-port P] [--db FILE]
                                         dev server + worker + the default MNIST CNN run (what \`npm start\` runs)
  dev-server [--port 7233] [--ui-port 8233] [--db FILE] [--headless] [--ui-codec-endpoint URL]
  worker [--slots N]                     a worker on DURABLE_TRAIN_TASK_QUEUE (default durable-train); N training
                                         activities at once (default 1, or DURABLE_TRAIN_SLOTS)
  start --spec FILE [--run-id ID] [--wait]   run id default: the spec file's name and a short suffix
  status RUN_ID
  watch RUN_ID
  checkpoints list RUN_ID [--verify] [--storage URL]
  checkpoints verify RUN_ID [CKPT] [--storage URL]
  checkpoints show RUN_ID CKPT [--storage URL]
  checkpoints sign RUN_ID [CKPT] [--storage URL] [--i-have-checked]
                                                   sign (after a full check) with DURABLE_TRAIN_CHECKPOINT_KEY's first key;
                                                   an unsigned checkpoint in a signed run only with --i-have-checked
  pause RUN_ID | resume RUN_ID | stop RUN_ID
  set-lr RUN_ID VALUE                    validated; applies from the next chunk, recorded in checkpoints and history
  cancel RUN_ID                          Temporal cancellation (the running chunk checkpoints first)
  fork --from RUN_ID[:CKPT] [--spec-override FILE] [--run-id NEW] [--wait]
  lineage RUN_ID
  runs list
  health RUN_ID [--max-age SECONDS]      exit 1 when the newest checkpoint is damaged or stale, chunks (commits)
                                         failed within --max-age (default 600), or the run failed
  export RUN_ID[:CKPT] --out DIR [--include-optimizer] [--bake-preprocessing] [--force] [--storage URL]
                                         TF.js Layers model + preprocessing.json (+ optimizer slots)
  evaluate RUN_ID[:CKPT] [--split test|validation] [--storage URL]
                                         a checkpoint on the test (or validation) split
  predict RUN_ID[:CKPT] --input rows.csv|rows.jsonl [--out preds.csv] [--storage URL]
                                         class and probabilities (or value) for raw rows, columns checked by name
  drill RUN_ID [--checkpoint CKPT] [--steps K]   recovery drill on the workers: restore CKPT (default: the newest
                                         with a later one) in a fresh trainer, replay to the next checkpoint, compare
                                         bit for bit; exit 0 verified, 1 not
  drill RUN_ID --every 6h | drill --list RUN_ID | drill --remove RUN_ID   scheduled drills (a Temporal Schedule)
  report RUN_ID --out FILE.html [--png FILE.png] [--compare RUN] [--force] [--verify] [--storage URL]   curves, checkpoints, recoveries, spec
  codec-server [--port 8081] [--host 127.0.0.1] [--cors-origin URL]...   the Web UI's remote codec endpoint (/decode,
                                         /encode) with DURABLE_TRAIN_CODEC_KEYS; bearer token DURABLE_TRAIN_CODEC_SERVER_TOKEN

run ids and checkpoint ids: letters, digits, '-', '_' and '.' (not first), at most 200 characters.
exit codes: 0 ok, 1 check failed (health alert, damaged checkpoint), 2 bad usage or input, 3 not found,
  4 wrong run state (already running, not running), 5 the run ended without a result, 6 Temporal unreachable.

environment: TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE (default default), TEMPORAL_API_KEY,
  TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_NAME,
  TEMPORAL_TLS, TEMPORAL_PROFILE and TEMPORAL_CONFIG_FILE (a TOML profile file; default ~/.config/temporalio/temporal.toml),
  DURABLE_TRAIN_CODEC_KEYS (id=base64key,...: AES-256-GCM payload encryption, the first key encrypts), DURABLE_TRAIN_TASK_QUEUE, DURABLE_TRAIN_BACKEND (auto|tensorflow|wasm|cpu), TEMPORAL_CLI_PATH`;

const HELP = '`durable-train --help` lists the commands';

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
  split: { type: 'string' },
  'bake-preprocessing': { type: 'boolean' },
  input: { type: 'string' },
  force: { type: 'boolean' },
  'i-have-checked': { type: 'boolean' },
  png: { type: 'string' },
  compare: { type: 'string' },
  'max-age': { type: 'string' },
  slots: { type: 'string' },
  host: { type: 'string' },
  'cors-origin': { type: 'string', multiple: true },
  'ui-codec-endpoint': { type: 'string' },
  checkpoint: { type: 'string' },
  steps: { type: 'string' },
  every: { type: 'string' },
  list: { type: 'boolean' },
  remove: { type: 'boolean' },
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
    const command = argv.find((a) => !a.startsWith('-'));
    const negative = argv.find((a) => /^-(\d|\.\d)/.test(a));
    // `set-lr RUN -1` parses as an unknown option: say what is wrong with the value instead.
    if (command === 'set-lr' && negative) throw new CliError(`set-lr: VALUE must be > 0, got ${negative}`, 2);
    const message = (err as Error).message.replace(/\s*\n\s*/g, ' ');
    throw new CliError(`${command ? `${command}: ` : ''}${message} (${HELP})`, 2);
  }
  const { values: v, positionals: pos } = parsed;
  const [command, ...rest] = pos;
  const out = output(Boolean(v.json));
  const need = (n: number, what: string) => {
    if (rest.length < n) throw new CliError(`${command}: missing ${what} (${HELP})`, 2);
  };
  if (v.help || !command) {
    process.stdout.write(USAGE + '\n');
    return command || v.help ? 0 : 2;
  }
  switch (command) {
    case 'main':
      return mainCommand(out, {
        specFile: v.spec,
        runId: v['run-id'] === undefined ? undefined : runIdArg(v['run-id']),
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
        uiCodecEndpoint: v['ui-codec-endpoint'],
      });
      out.emit(
        { address: server.address, uiUrl: server.uiUrl, db: server.db, pid: server.pid },
        () =>
          `Temporal dev server at ${server.address}${server.uiUrl ? `, Web UI ${server.uiUrl}` : ''}, SQLite ${server.db}\nCtrl-C to stop`,
      );
      let stopping = false;
      const stop = () => {
        stopping = true;
        void server.stop();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const { code, signal } = await server.exitStatus;
      if (stopping) return 0;
      // The server went away without being asked to: a kill, a crash or a port clash. Not a success.
      process.stderr.write(
        `durable-train: the Temporal dev server (pid ${server.pid}) exited unexpectedly (${signal ? `killed by ${signal}` : `exit code ${code}`})\n`,
      );
      return code || 1;
    }
    case 'worker':
      await runWorker({ slots: slotsOption(v.slots) });
      return 0;
    case 'start': {
      if (!v.spec) throw new CliError('start: --spec FILE is required', 2);
      const runId = runIdArg(v['run-id'] ?? runIdForSpecFile(v.spec));
      const spec = loadSpecFile(v.spec); // validated before anything is started
      assertStorageOpens(spec);
      const settings = temporalSettings();
      const client = await connectClient(settings);
      await startCommand(client, settings, out, { spec, runId, wait: v.wait });
      return 0;
    }
    case 'status': {
      need(1, 'RUN_ID');
      const runId = runIdArg(rest[0]);
      await statusCommand(await connectClient(), out, runId);
      return 0;
    }
    case 'watch': {
      need(1, 'RUN_ID');
      const runId = runIdArg(rest[0]);
      const result = await watchRun(await connectClient(), out, runId);
      return result ? 0 : 1;
    }
    case 'checkpoints': {
      const [sub, rawRunId, rawCkpt] = rest;
      if (!sub || rawRunId === undefined)
        throw new CliError('checkpoints: usage: checkpoints list|verify|show|sign RUN_ID [CKPT]', 2);
      if (!['list', 'verify', 'show', 'sign'].includes(sub))
        throw new CliError(`checkpoints: unknown subcommand ${sub} (list, verify, show, sign)`, 2);
      const runId = runIdArg(rawRunId);
      if (sub === 'show' && rawCkpt === undefined) throw new CliError('checkpoints show: missing CKPT', 2);
      const ckpt = rawCkpt === undefined ? undefined : checkpointIdArg(rawCkpt);
      const client = v.storage ? null : await connectClient();
      const manager = await managerForRun(client, runId, v.storage);
      if (sub === 'list') return checkpointsList(manager, out, { verify: v.verify });
      if (sub === 'verify') return checkpointsVerify(manager, out, ckpt);
      if (sub === 'sign') return checkpointsSign(manager, out, ckpt, Boolean(v['i-have-checked']));
      await checkpointsShow(manager, out, ckpt!);
      return 0;
    }
    case 'pause':
    case 'resume':
    case 'stop': {
      need(1, 'RUN_ID');
      const runId = runIdArg(rest[0]);
      await signalCommand(await connectClient(), out, runId, command);
      return 0;
    }
    case 'set-lr':
      need(2, 'RUN_ID VALUE');
      runIdArg(rest[0]);
      parseLearningRate(rest[1]); // refused before connecting: nothing is sent
      await setLrCommand(await connectClient(), out, rest[0], rest[1]);
      return 0;
    case 'cancel': {
      need(1, 'RUN_ID');
      const runId = runIdArg(rest[0]);
      await cancelCommand(await connectClient(), out, runId);
      return 0;
    }
    case 'fork': {
      if (!v.from) throw new CliError('fork: --from RUN_ID[:CKPT] is required', 2);
      if (v['run-id'] !== undefined) runIdArg(v['run-id']);
      const settings = temporalSettings();
      await forkCommand(await connectClient(settings), settings, out, {
        from: v.from,
        overrideFile: v['spec-override'],
        runId: v['run-id'],
        wait: v.wait,
      });
      return 0;
    }
    case 'lineage': {
      need(1, 'RUN_ID');
      const runId = runIdArg(rest[0]);
      return lineageCommand(await connectClient(), out, runId);
    }
    case 'runs':
      if (rest[0] !== 'list') throw new CliError('runs: usage: runs list', 2);
      await runsListCommand(await connectClient(), out);
      return 0;
    case 'health': {
      need(1, 'RUN_ID');
      const maxAge = v['max-age'] === undefined ? 600 : Number(v['max-age']);
      if (!Number.isFinite(maxAge) || maxAge <= 0)
        throw new CliError(`--max-age must be a positive number of seconds`, 2);
      const runId = runIdArg(rest[0]);
      return healthCommand(await connectClient(), out, runId, { maxAgeSeconds: maxAge, storage: v.storage });
    }
    case 'export':
      need(1, 'RUN_ID[:CKPT]');
      exportRef(rest[0]); // ids checked before connecting
      await exportCommand(await connectClient(), out, {
        ref: rest[0],
        out: v.out,
        includeOptimizer: v['include-optimizer'],
        bakePreprocessing: v['bake-preprocessing'],
        force: v.force,
        storage: v.storage,
      });
      return 0;
    case 'evaluate':
      need(1, 'RUN_ID[:CKPT]');
      exportRef(rest[0]); // ids checked before connecting
      splitArg(v.split);
      await evaluateCommand(await connectClient(), out, { ref: rest[0], split: v.split, storage: v.storage });
      return 0;
    case 'predict':
      need(1, 'RUN_ID[:CKPT]');
      exportRef(rest[0]);
      await predictCommand(await connectClient(), out, {
        ref: rest[0],
        input: v.input,
        out: v.out,
        storage: v.storage,
      });
      return 0;
    case 'report': {
      need(1, 'RUN_ID');
      const runId = runIdArg(rest[0]);
      await reportCommand(await connectClient(), out, {
        runId,
        out: v.out,
        png: v.png,
        force: v.force,
        storage: v.storage,
        verify: v.verify,
        compare: v.compare === undefined ? undefined : runIdArg(v.compare),
      });
      return 0;
    }
    case 'codec-server':
      return codecServerCommand(out, {
        port: intOption(v.port, 'port', 8081),
        host: v.host,
        origins: v['cors-origin'],
      });
    case 'drill': {
      need(1, 'RUN_ID');
      const runId = runIdArg(rest[0]);
      if (v.list) return drill.listDrillsCommand(await connectClient(), out, runId);
      if (v.remove) return drill.removeDrillScheduleCommand(await connectClient(), out, runId);
      const o = {
        runId,
        checkpoint: v.checkpoint === undefined ? undefined : checkpointIdArg(v.checkpoint),
        steps: drill.parseDrillSteps(v.steps),
        every: v.every,
      };
      if (o.every !== undefined) drill.parseEvery(o.every); // refused before connecting
      const settings = temporalSettings();
      const client = await connectClient(settings);
      return o.every !== undefined
        ? drill.scheduleDrillCommand(client, settings, out, o)
        : drill.drillCommand(client, settings, out, o);
    }
    default:
      throw new CliError(`unknown command ${command} (${HELP})`, 2);
  }
}

/** One line and an exit code for any error: known kinds get their code, the rest a message (stack on DEBUG). */
function describeError(err: unknown): [string, number] {
  if (err instanceof CliError) return [err.message, err.exitCode];
  if (err instanceof InvalidIdError || err instanceof SpecError) return [err.message, EXIT.usage];
  // A payload encrypted with a key this process does not hold: the message names the key id (never a key).
  if (err instanceof CodecKeyError) return [err.message, EXIT.usage];
  if (err instanceof CheckpointNotFoundError || err instanceof WorkflowNotFoundError)
    return [err.message, EXIT.notFound];
  if (err instanceof WorkflowFailedError) return [`run failed: ${rootCause(err)}`, EXIT.runFailed];
  if (isUnavailable(err))
    return [
      `lost the connection to Temporal: ${(err as Error).message.split('\n')[0].replace(/^\d+ [A-Z_]+: /, '')}`,
      EXIT.unreachable,
    ];
  const m = err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err);
  return [`${m.split('\n')[0]} (set DURABLE_TRAIN_DEBUG=1 for the stack)`, 1];
}

/** gRPC UNAVAILABLE (14) or DEADLINE_EXCEEDED (4): the server went away during the command. */
function isUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 14 || e.code === 4) return true;
  }
  return false;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const [message, code] = describeError(err);
    process.stderr.write(`durable-train: ${message}\n`);
    if (process.env.DURABLE_TRAIN_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exit(code);
  },
);
