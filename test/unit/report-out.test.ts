// `report` refuses to overwrite an existing --out or --png file unless --force, like `export`: before it reads
// anything from the server (the client here fails any use), with exit code 2 and the file untouched.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import { CliError, type Out } from '../../cli/common';
import { reportCommand } from '../../cli/report';

/** A client that fails the test if the command uses it at all. */
const untouchable = new Proxy({} as Client, {
  get(_, prop) {
    throw new Error(`the report used the Temporal client (${String(prop)}) before checking its outputs`);
  },
});
const out: Out = { json: true, emit: () => assert.fail('nothing should be reported') };

function refusal(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof CliError, `a CliError, got ${(err as Error).stack}`);
    assert.equal(err.exitCode, 2);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('report: existing output files', function () {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-report-out-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses an existing --out file without --force and leaves it as it was', async function () {
    const html = path.join(dir, 'r.html');
    fs.writeFileSync(html, 'my notes');
    await assert.rejects(
      reportCommand(untouchable, out, { runId: 'any', out: html }),
      refusal(/--out .*r\.html exists; pass --force to overwrite it/),
    );
    assert.equal(fs.readFileSync(html, 'utf8'), 'my notes');
  });

  it('refuses an existing --png file without --force, before writing the page', async function () {
    const html = path.join(dir, 'r.html');
    const png = path.join(dir, 'r.png');
    fs.writeFileSync(png, 'my picture');
    await assert.rejects(
      reportCommand(untouchable, out, { runId: 'any', out: html, png }),
      refusal(/--png .*r\.png exists; pass --force to overwrite it/),
    );
    assert.equal(fs.readFileSync(png, 'utf8'), 'my picture');
    assert.equal(fs.existsSync(html), false);
  });

  it('refuses a directory, and --out and --png naming one file, even with --force', async function () {
    await assert.rejects(
      reportCommand(untouchable, out, { runId: 'any', out: dir, force: true }),
      refusal(/is a directory/),
    );
    const file = path.join(dir, 'same');
    await assert.rejects(
      reportCommand(untouchable, out, { runId: 'any', out: file, png: file, force: true }),
      refusal(/--out and --png name the same file/),
    );
  });

  it('with --force goes on to read the run (here: the client that must not be used)', async function () {
    const html = path.join(dir, 'r.html');
    fs.writeFileSync(html, 'my notes');
    await assert.rejects(
      reportCommand(untouchable, out, { runId: 'any', out: html, force: true }),
      /used the Temporal/,
    );
    assert.equal(fs.readFileSync(html, 'utf8'), 'my notes');
  });
});
