// The README's command table, written from the command definitions by `npm run docs:cli`; a unit test
// (test/unit/cli-parser.test.ts) fails when the README's copy is not current.
import * as fs from 'node:fs';
import { synopsis, type CommandDefinition } from './command';
import { COMMANDS } from './commands';
import { projectPath } from './common';

export const README = projectPath('README.md');
export const TABLE_START = '<!-- cli-table:start: written by `npm run docs:cli` from the command definitions -->';
export const TABLE_END = '<!-- cli-table:end -->';

/** A Markdown table of the commands, aligned as Prettier aligns it (so `prettier --check` passes). */
export function cliTable(commands: readonly CommandDefinition[] = COMMANDS): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const rows = [['command', 'what it does'], ...commands.map((d) => [cell(`\`${synopsis(d)}\``), cell(d.summary)])];
  const widths = [0, 1].map((i) => Math.max(3, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(rows[0]), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)].join('\n');
}

/** `readme` with the table between the markers replaced by the current one. */
export function withCurrentTable(readme: string, table = cliTable()): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${TABLE_START} ... ${TABLE_END} markers`);
  return `${readme.slice(0, start + TABLE_START.length)}\n\n${table}\n\n${readme.slice(end)}`;
}

/** `npm run docs:cli`: rewrites the README's table; says whether it changed. */
export function writeReadmeTable(file = README): boolean {
  const before = fs.readFileSync(file, 'utf8');
  const after = withCurrentTable(before);
  if (after !== before) fs.writeFileSync(file, after);
  return after !== before;
}
