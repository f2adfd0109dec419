// The one shape of a CLI command. Each command's module exports its definition (`defineCommand({...})`);
// cli/commands.ts lists them, cli/program.ts registers them with commander (each with its own options, arguments and
// --help), and cli/docs.ts writes the README's command table from the same definitions.
import { checkpointIdArg, runIdArg, type Out } from './common';

/** A `--flag`: a boolean, or one that takes a value (`value` names it in help: `--spec FILE`). */
export interface OptionSpec {
  /** The long flag without its dashes, e.g. `run-id`; the run function reads it under this name. */
  readonly name: string;
  /** The value's placeholder in help (`FILE`); absent for a boolean flag. */
  readonly value?: string;
  /** Repeatable (`--cors-origin A --cors-origin B`): the values in order. */
  readonly multiple?: boolean;
  /** Refused with exit 2 when missing, naming the flag and the command's usage. */
  readonly required?: boolean;
  readonly description: string;
}

/** A positional argument, named in help and in errors (`RUN_ID`). */
export interface ArgumentSpec {
  readonly name: string;
  readonly optional?: boolean;
  readonly description?: string;
  /**
   * Checks the value (throwing exit 2 naming what is wrong) and returns what the run function gets. Arguments are
   * checked in order, before the required options and before the command runs.
   */
  readonly check?: (raw: string) => string;
}

/** A run id argument, refused unless valid. */
export const RUN_ID_ARGUMENT = { name: 'RUN_ID', check: runIdArg } as const;
/** A checkpoint id argument, refused unless valid. */
export const CKPT_ARGUMENT = { name: 'CKPT', check: checkpointIdArg } as const;

type ValueOf<O extends OptionSpec> = O extends { value: string }
  ? O extends { multiple: true }
    ? string[]
    : string
  : boolean;

/** The parsed flags, under their names: required ones always present, the others possibly undefined. */
export type OptionValues<Os extends readonly OptionSpec[]> = {
  [O in Os[number] as O extends { required: true } ? O['name'] : never]: ValueOf<O>;
} & { [O in Os[number] as O extends { required: true } ? never : O['name']]?: ValueOf<O> };

/** The positional arguments, under their names. */
export type ArgumentValues<As extends readonly ArgumentSpec[]> = {
  [A in As[number] as A extends { optional: true } ? never : A['name']]: string;
} & { [A in As[number] as A extends { optional: true } ? A['name'] : never]?: string };

export interface CommandContext<Os extends readonly OptionSpec[], As extends readonly ArgumentSpec[]> {
  opts: OptionValues<Os>;
  args: ArgumentValues<As>;
  /** JSON (`--json`) or human output. */
  out: Out;
}

export interface CommandDefinition<
  Os extends readonly OptionSpec[] = readonly OptionSpec[],
  As extends readonly ArgumentSpec[] = readonly ArgumentSpec[],
> {
  /** `status`, or a group and its subcommand: `checkpoints list`. */
  readonly name: string;
  /** One line: the command list of `--help` and the README's table. */
  readonly summary: string;
  /** More text for the command's own `--help`. */
  readonly details?: string;
  readonly arguments?: As;
  readonly options?: Os;
  /** Does the work; resolves to the exit code (one of EXIT's). */
  run(ctx: CommandContext<Os, As>): Promise<number>;
}

/** A command definition, its options and arguments typed from the literal (`opts['run-id']`, `args.RUN_ID`). */
export function defineCommand<
  const Os extends readonly OptionSpec[] = [],
  const As extends readonly ArgumentSpec[] = [],
>(def: CommandDefinition<Os, As>): CommandDefinition {
  return def as unknown as CommandDefinition;
}

/** `--spec FILE`, `--wait`. */
export const flagText = (o: OptionSpec): string => `--${o.name}${o.value ? ` ${o.value}` : ''}`;

/** The usage line of a command: `checkpoints list RUN_ID [--verify] [--storage URL]`. */
export function synopsis(def: CommandDefinition): string {
  const args = (def.arguments ?? []).map((a) => (a.optional ? `[${a.name}]` : a.name));
  const opts = (def.options ?? []).map((o) => {
    const text = `${flagText(o)}${o.multiple ? '...' : ''}`;
    return o.required ? text : `[${text}]`;
  });
  return [def.name, ...args, ...opts].join(' ');
}
