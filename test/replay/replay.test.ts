// Replay guard: every recorded history (test/replay/histories, made by record.ts) must replay against the current
// workflow code without nondeterminism, so a change that would break runs already in flight fails here, not in
// production. See docs/workflow-changes.md.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DefaultLogger, Runtime, Worker, type ReplayWorkerOptions } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { historyFromJson } from './history-json';
import { HISTORIES_DIR, RECORDED_RUNS } from './record';

interface HistoryFile {
  file: string;
  /** `<workflowId>.json` or `<workflowId>.<execution>.json` (one file per execution of a continue-as-new chain). */
  workflowId: string;
}

function historyFiles(): HistoryFile[] {
  if (!fs.existsSync(HISTORIES_DIR)) return [];
  return fs
    .readdirSync(HISTORIES_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, workflowId: file.replace(/(\.\d+)?\.json$/, '') }));
}

interface Outcome {
  file: string;
  error?: Error;
}

/** Replays every history with one replay worker (one bundle of `workflowsPath`). */
async function replayAll(workflowsPath: string, files: HistoryFile[]): Promise<Outcome[]> {
  const options: ReplayWorkerOptions = { workflowsPath, replayName: path.basename(workflowsPath, '.js') };
  const histories = files.map((f) => ({
    workflowId: f.workflowId,
    history: historyFromJson(JSON.parse(fs.readFileSync(path.join(HISTORIES_DIR, f.file), 'utf8'))),
  }));
  const outcomes: Outcome[] = [];
  let i = 0;
  for await (const result of Worker.runReplayHistories(options, histories)) {
    outcomes.push({ file: files[i++].file, error: result.error });
  }
  assert.equal(outcomes.length, files.length, 'every history was replayed');
  return outcomes;
}

/** Every kind of run record.ts records must have its history here: a replay of no histories proves nothing. */
function assertAllRecorded(files: HistoryFile[]): void {
  const have = new Set(files.map((f) => f.workflowId));
  const missing = RECORDED_RUNS.filter((name) => !have.has(name));
  assert.deepEqual(missing, [], `missing histories in ${HISTORIES_DIR}: record them with \`npm run record-histories\``);
  const chain = files.filter((f) => f.workflowId === 'continue-as-new');
  assert.ok(chain.length >= 2, `continue-as-new has one history per execution, got ${chain.map((f) => f.file)}`);
}

const CURRENT = path.join(__dirname, '..', '..', 'workflows', 'index.js');
const variant = (name: string) => path.join(__dirname, 'workflows', `${name}.js`);

describe('replaying recorded histories against the workflow code (determinism guard)', function () {
  this.timeout(300_000);
  const files = historyFiles();

  before(function () {
    // The negative cases make the SDK log every expected nondeterminism failure; the assertions report real ones.
    try {
      Runtime.install({
        logger: new DefaultLogger('ERROR'),
        telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } },
      });
    } catch {
      // A runtime is installed already (by another test in this process): keep its settings.
    }
  });

  it('has a recorded history of every representative kind of run', function () {
    assertAllRecorded(files);
  });

  it('the current workflow code replays every history without nondeterminism', async function () {
    assertAllRecorded(files);
    const outcomes = await replayAll(CURRENT, files);
    const failed = outcomes.filter((o) => o.error).map((o) => `${o.file}: ${o.error!.name}: ${o.error!.message}`);
    assert.deepEqual(
      failed,
      [],
      'the workflow code is no longer compatible with runs recorded by the released code; ' +
        'guard the change with patched() (docs/workflow-changes.md)',
    );
  });

  it('catches an incompatible change: an extra activity before training fails every replay with DeterminismViolationError', async function () {
    assertAllRecorded(files);
    const outcomes = await replayAll(variant('extra-activity'), files);
    for (const o of outcomes) {
      assert.ok(
        o.error instanceof DeterminismViolationError,
        `${o.file}: expected a DeterminismViolationError, got ${o.error ? `${o.error.name}: ${o.error.message}` : 'a clean replay'}`,
      );
      assert.match(o.error.message, /applyRetention|nondetermin/i, o.file);
    }
  });

  it('the same change behind patched() replays every history cleanly', async function () {
    assertAllRecorded(files);
    const outcomes = await replayAll(variant('patched-extra-activity'), files);
    const failed = outcomes.filter((o) => o.error).map((o) => `${o.file}: ${o.error!.name}: ${o.error!.message}`);
    assert.deepEqual(failed, []);
  });
});
