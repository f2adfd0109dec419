// The command line as parsed from the command definitions, in process: unknown flags, extra and missing arguments are
// exit 2 naming them; every command has its own --help; global flags work before and after the command; the README's
// table is the one the definitions make. One spawned run checks the real entry's exit code.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defineCommand, flagText, synopsis } from '../../cli/command';
import { COMMANDS } from '../../cli/commands';
import { EXIT } from '../../cli/common';
import { cliTable, README, withCurrentTable } from '../../cli/docs';
import { runCli } from '../../cli/program';
import { PROJECT_ROOT } from '../../cli/tools';

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(argv: string[], commands = COMMANDS): Promise<Run> {
  const r = { out: '', err: '' };
  const code = await runCli(argv, { out: (s) => (r.out += s), err: (s) => (r.err += s) }, commands);
  return { code, ...r };
}

/** A usage error: exit 2 and exactly one line, `durable-train: ...`, matching `message`. */
function usageError(r: Run, message: RegExp): void {
  assert.equal(r.code, EXIT.usage, `exit code: ${r.out}${r.err}`);
  assert.equal(r.out, '');
  assert.match(r.err, /^durable-train: [^\n]*\n$/, r.err);
  assert.match(r.err, message);
}

describe('the CLI parser (cli/program.ts, in process)', function () {
  it('refuses an unknown flag, or one of another command, with exit 2 naming it', async function () {
    usageError(await cli(['start', '--spec', 'x.json', '--bogus']), /start: unknown option '--bogus'/);
    usageError(await cli(['status', 'x', '--spec', 'y.json']), /status: unknown option '--spec'/);
    usageError(await cli(['checkpoints', 'verify', 'x', '--verify']), /checkpoints verify: unknown option '--verify'/);
    usageError(await cli(['--bogus']), /unknown option '--bogus'/);
  });

  it('refuses extra arguments with exit 2 naming them', async function () {
    usageError(await cli(['status', 'a', 'b']), /status: unexpected argument "b" \(usage: status RUN_ID\)/);
    usageError(await cli(['set-lr', 'a', '0.1', 'c', 'd']), /set-lr: unexpected arguments "c" "d"/);
    usageError(await cli(['runs', 'list', 'extra']), /runs list: unexpected argument "extra"/);
    usageError(await cli(['start', 'x.json', '--spec', 'x.json']), /start: unexpected argument "x\.json"/);
  });

  it('names a missing argument, a missing required flag, a missing or unknown (sub)command', async function () {
    usageError(await cli(['status']), /status: missing RUN_ID/);
    usageError(await cli(['set-lr', 'run']), /set-lr: missing VALUE/);
    usageError(await cli(['checkpoints', 'show', 'run']), /checkpoints show: missing CKPT/);
    usageError(await cli(['start']), /start: --spec FILE is required \(usage: start --spec FILE \[--run-id ID\]/);
    usageError(await cli(['export', 'run']), /export: --out DIR is required .*--include-optimizer/);
    usageError(await cli(['start', '--spec']), /start: option '--spec <FILE>' argument missing/);
    usageError(await cli(['checkpoints']), /checkpoints: usage: checkpoints list\|verify\|show\|sign/);
    usageError(await cli(['checkpoints', 'nope', 'x']), /checkpoints: unknown subcommand nope \(list, verify/);
    usageError(await cli(['nope']), /unknown command nope/);
  });

  it('checks values before connecting to anything: ids, ports, a negative learning rate', async function () {
    // No Temporal anywhere (port 1): each refusal comes from the value check, before a connection is tried.
    const address = process.env.TEMPORAL_ADDRESS;
    process.env.TEMPORAL_ADDRESS = '127.0.0.1:1';
    try {
      usageError(await cli(['set-lr', 'run', '-1']), /set-lr: VALUE must be > 0, got -1$/m);
      usageError(await cli(['status', '../x']), /invalid run id "\.\.\/x"/);
      // Ids are checked before a missing required flag is named, as the commands always did.
      usageError(await cli(['report', '../x']), /invalid run id "\.\.\/x"/);
      usageError(await cli(['export', 'run:../y']), /invalid checkpoint id "\.\.\/y"/);
      usageError(await cli(['checkpoints', 'verify', 'run', '../y']), /invalid checkpoint id "\.\.\/y"/);
      usageError(await cli(['dev-server', '--port', '70000']), /--port must be a port number, got 70000/);
      usageError(await cli(['health', 'run', '--max-age', '-5']), /--max-age must be a positive number/);
      usageError(await cli(['drill', 'run', '--steps', '0']), /drill: --steps must be an integer >= 1/);
    } finally {
      if (address === undefined) delete process.env.TEMPORAL_ADDRESS;
      else process.env.TEMPORAL_ADDRESS = address;
    }
  });

  it('`<command> --help` prints that command, its arguments and options, and exits 0, for every command', async function () {
    assert.ok(COMMANDS.length >= 25, `${COMMANDS.length} commands`);
    for (const def of COMMANDS) {
      const words = def.name.split(' ');
      // `--help`, and the help command (`help status`, `checkpoints help list`).
      for (const argv of [
        [...words, '--help'],
        [...words.slice(0, -1), 'help', ...words.slice(-1)],
      ]) {
        const r = await cli(argv);
        assert.equal(r.code, EXIT.ok, `${argv.join(' ')}: ${r.err}`);
        assert.equal(r.err, '');
        assert.ok(r.out.startsWith(`Usage: durable-train ${synopsis(def)}`), r.out);
        assert.ok(r.out.includes(def.summary.slice(0, 40)), `${def.name}: its summary\n${r.out}`);
        for (const o of def.options ?? []) {
          const line = new RegExp(
            `^  --${o.name}${o.value ? ` <${o.value.replace(/[[\]|.]/g, '\\$&')}>` : ''} +\\S`,
            'm',
          );
          assert.match(r.out, line, `${def.name}: ${flagText(o)}`);
        }
        assert.match(r.out, /^ {2}--json +print JSON/m, `${def.name}: the global --json`);
        assert.match(r.out, /^ {2}-h, --help /m);
      }
    }
    const top = await cli(['--help']);
    assert.equal(top.code, EXIT.ok);
    for (const group of ['checkpoints', 'runs', 'status', 'codec-server'])
      assert.match(top.out, new RegExp(`^  ${group}`, 'm'));
    assert.match(top.out, /exit codes: 0 ok, 1 check failed/);
    // No command at all: the same list, as a usage error.
    const none = await cli([]);
    assert.equal(none.code, EXIT.usage);
    assert.equal(none.out, top.out);
  });

  it('passes typed options and arguments to the run function; --json works before and after the command', async function () {
    const seen: unknown[] = [];
    const probe = defineCommand({
      name: 'probe one',
      summary: 'records what it was given',
      arguments: [{ name: 'A' }, { name: 'B', optional: true }],
      options: [
        { name: 'run-id', value: 'ID', description: 'a value' },
        { name: 'flag', description: 'a boolean' },
        { name: 'origin', value: 'URL', multiple: true, description: 'repeatable' },
      ],
      async run({ args, opts, out }) {
        seen.push({
          A: args.A,
          B: args.B,
          runId: opts['run-id'],
          flag: opts.flag,
          origin: opts.origin,
          json: out.json,
        });
        return EXIT.check;
      },
    });
    assert.equal((await cli(['--json', 'probe', 'one', 'a', '--run-id', 'r', '--flag'], [probe])).code, EXIT.check);
    assert.equal((await cli(['probe', 'one', 'a', 'b', '--origin', 'x', '--origin=y', '--json'], [probe])).code, 1);
    assert.equal((await cli(['probe', 'one', 'a'], [probe])).code, 1);
    assert.deepEqual(seen, [
      { A: 'a', B: undefined, runId: 'r', flag: true, origin: undefined, json: true },
      { A: 'a', B: 'b', runId: undefined, flag: undefined, origin: ['x', 'y'], json: true },
      { A: 'a', B: undefined, runId: undefined, flag: undefined, origin: undefined, json: false },
    ]);
  });

  it("the README's command table is the one the definitions make (`npm run docs:cli` rewrites it)", function () {
    const readme = fs.readFileSync(README, 'utf8');
    assert.equal(
      withCurrentTable(readme),
      readme,
      'README.md is not current: run `npm run docs:cli` and commit README.md',
    );
    for (const def of COMMANDS) assert.ok(cliTable().includes(`\`${synopsis(def).replace(/\|/g, '\\|')}\``), def.name);
  });

  it("the installed entry exits with the parser's code (one spawned run)", function () {
    const r = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'client.js'), 'status', 'a', 'b'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, EXIT.usage, r.stderr);
    assert.equal(r.stderr, 'durable-train: status: unexpected argument "b" (usage: status RUN_ID)\n');
  });
});
