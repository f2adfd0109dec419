// The command line, parsed by commander from the command definitions (cli/commands.ts): each command its own options,
// arguments and --help; an unknown flag, a missing or extra argument is exit 2 naming it. Every error becomes one
// line and an exit code of EXIT.
import { Argument, Command, CommanderError, Option } from 'commander';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { errorCodeOf, type ErrorCode } from '../spec/errors';
import { flagText, synopsis, type CommandDefinition } from './command';
import { COMMANDS, GROUPS } from './commands';
import { CliError, EXIT, output, rootCause, type ExitCode } from './common';

/** Where the parser's own output goes (help text, error lines); process.stdout and stderr unless a test captures it. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const PROCESS_IO: CliIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

const HELP = '`durable-train --help` lists the commands';

const PROGRAM_DETAILS = `
run ids and checkpoint ids: letters, digits, '-', '_' and '.' (not first), at most 200 characters.
exit codes: 0 ok, 1 check failed (health alert, damaged checkpoint), 2 bad usage or input, 3 not found,
  4 wrong run state (already running, not running), 5 the run ended without a result, 6 Temporal unreachable.

environment: TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE (default default), TEMPORAL_API_KEY,
  TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_NAME,
  TEMPORAL_TLS, TEMPORAL_PROFILE and TEMPORAL_CONFIG_FILE (a TOML profile file; default ~/.config/temporalio/temporal.toml),
  DURABLE_TRAIN_CODEC_KEYS (id=base64key,...: AES-256-GCM payload encryption, the first key encrypts), DURABLE_TRAIN_TASK_QUEUE, DURABLE_TRAIN_BACKEND (auto|tensorflow|wasm|cpu), TEMPORAL_CLI_PATH`;

/** The command's words as typed: `checkpoints list`. */
function pathOf(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Commander's refusal as one line naming what was wrong, prefixed with the command. */
function usageMessage(cmd: Command, def: CommandDefinition | null, e: CommanderError): string {
  const where = pathOf(cmd);
  const prefix = where ? `${where}: ` : '';
  const ownHelp = `\`durable-train ${where} --help\` lists its options`;
  switch (e.code) {
    case 'commander.unknownCommand':
      return where
        ? `${where}: unknown subcommand ${cmd.args[0]} (${cmd.commands.map((c) => c.name()).join(', ')})`
        : `unknown command ${cmd.args[0]} (${HELP})`;
    case 'commander.help': // a group without its subcommand
      return `${prefix}usage: ${where} ${cmd.commands.map((c) => c.name()).join('|')} (${ownHelp.replace('its options', 'them')})`;
    case 'commander.missingArgument': {
      const missing = cmd.registeredArguments.find((a, i) => a.required && cmd.args[i] === undefined);
      return `${prefix}missing ${missing?.name() ?? 'an argument'} (${HELP})`;
    }
    case 'commander.excessArguments': {
      const extra = cmd.args.slice(cmd.registeredArguments.length);
      return `${prefix}unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((a) => JSON.stringify(a)).join(' ')} (usage: ${def ? synopsis(def) : where})`;
    }
  }
  const message = e.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
  return `${prefix}${message}${where ? ` (${ownHelp})` : ` (${HELP})`}`;
}

/** Output to `io`, and every refusal thrown (not printed, not process.exit) so runCli makes it one line and a code. */
function configure(cmd: Command, io: CliIo, def: CommandDefinition | null, helpBuffer: { text: string }): Command {
  return cmd
    .configureOutput({
      writeOut: (s) => io.out(s),
      // Only help goes here (errors are thrown): kept, to be printed or dropped once the exit is known.
      writeErr: (s) => (helpBuffer.text += s),
      outputError: () => undefined,
    })
    .configureHelp({ showGlobalOptions: true, helpWidth: 120 })
    .exitOverride((e) => {
      if (e.exitCode === 0) throw e; // --help
      if (e.code === 'commander.help' && !cmd.parent) throw e; // no command at all: the help, exit 2
      throw new CliError(usageMessage(cmd, def, e), EXIT.usage);
    });
}

function register(
  parent: Command,
  def: CommandDefinition,
  io: CliIo,
  helpBuffer: { text: string },
  done: (code: number) => void,
): void {
  const words = def.name.split(' ');
  let at = parent;
  for (const group of words.slice(0, -1)) {
    at =
      at.commands.find((c) => c.name() === group) ??
      configure(at.command(group), io, null, helpBuffer).description(GROUPS[group] ?? '');
  }
  const cmd = configure(at.command(words[words.length - 1]), io, def, helpBuffer).summary(def.summary);
  cmd.description(def.details ? `${def.summary}\n\n${def.details}` : def.summary);
  cmd.usage(synopsis(def).slice(def.name.length + 1) || '[options]');
  for (const a of def.arguments ?? []) {
    cmd.addArgument(new Argument(a.optional ? `[${a.name}]` : `<${a.name}>`, a.description));
  }
  const options = (def.options ?? []).map((o) => {
    const option = new Option(
      `--${o.name}${o.value ? ` <${o.value}>` : ''}`,
      o.description + (o.required ? ' (required)' : ''),
    );
    if (o.multiple) option.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    cmd.addOption(option);
    return { spec: o, key: option.attributeName() };
  });
  cmd.action(async () => {
    // Checked in order (exit 2 naming the bad one), before the required flags: as the commands always checked ids first.
    const args: Record<string, string> = {};
    (def.arguments ?? []).forEach((a, i) => {
      if (cmd.args[i] !== undefined) args[a.name] = a.check ? a.check(cmd.args[i]) : cmd.args[i];
    });
    const values = cmd.opts();
    const missing = options.find((o) => o.spec.required && values[o.key] === undefined);
    if (missing)
      throw new CliError(`${def.name}: ${flagText(missing.spec)} is required (usage: ${synopsis(def)})`, EXIT.usage);
    const opts = Object.fromEntries(options.map((o) => [o.spec.name, values[o.key]]));
    done(await def.run({ opts, args, out: output(Boolean(cmd.optsWithGlobals().json), io.out) }));
  });
}

/** The whole command line: the global flags and every command of `commands`. */
export function buildProgram(
  commands: readonly CommandDefinition[],
  io: CliIo,
  done: (code: number) => void,
  helpBuffer = { text: '' },
): Command {
  const program = configure(new Command('durable-train'), io, null, helpBuffer)
    .description('train TensorFlow.js models as durable Temporal workflows')
    .option('--json', 'print JSON (one object a line) instead of text; every command takes it')
    .addHelpText('after', PROGRAM_DETAILS);
  for (const def of commands) register(program, def, io, helpBuffer, done);
  return program;
}

/** Runs one command line: resolves to the exit code, having printed the output or one error line to `io`. */
export async function runCli(argv: string[], io: CliIo = PROCESS_IO, commands = COMMANDS): Promise<number> {
  let code: number = EXIT.ok;
  const helpBuffer = { text: '' };
  const program = buildProgram(commands, io, (c) => (code = c), helpBuffer);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help (exit 0), or no command at all: the program's help on stdout and exit 2, as a usage error.
      io.out(helpBuffer.text);
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const [message, exitCode] = describeError(err);
    io.err(`durable-train: ${message}\n`);
    if (process.env.DURABLE_TRAIN_DEBUG && err instanceof Error && err.stack) io.err(`${err.stack}\n`);
    return exitCode;
  }
}

/**
 * The exit code of each kind of durable-train error that has one of its own; the other kinds (damaged, unavailable,
 * diverged, timeout) exit 1 with their name and message, as any unexpected error.
 */
const EXIT_BY_CODE: Partial<Record<ErrorCode, ExitCode>> = {
  invalid: EXIT.usage,
  'not-found': EXIT.notFound,
  conflict: EXIT.state,
};

/** One line and an exit code for any error: known kinds get their code, the rest a message (stack on DEBUG). */
export function describeError(err: unknown): [string, number] {
  if (err instanceof CliError) return [err.message, err.exitCode];
  // Any other durable-train error by its kind (a key this process does not hold is `invalid`: its message names the
  // key id, never a key).
  const exit = EXIT_BY_CODE[errorCodeOf(err) ?? 'command'];
  if (exit !== undefined) return [(err as Error).message, exit];
  if (err instanceof WorkflowNotFoundError) return [err.message, EXIT.notFound];
  if (err instanceof WorkflowFailedError) return [`run failed: ${rootCause(err)}`, EXIT.runFailed];
  if (isUnavailable(err))
    return [
      `lost the connection to Temporal: ${(err as Error).message.split('\n')[0].replace(/^\d+ [A-Z_]+: /, '')}`,
      EXIT.unreachable,
    ];
  const m = err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err);
  return [`${m.split('\n')[0]} (set DURABLE_TRAIN_DEBUG=1 for the stack)`, EXIT.check];
}

/** gRPC UNAVAILABLE (14) or DEADLINE_EXCEEDED (4): the server went away during the command. */
function isUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 14 || e.code === 4) return true;
  }
  return false;
}
