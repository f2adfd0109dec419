// Drills and replicas in training processes (activities/trainer-process/supervisor.ts runTask), through a drill: the
// report comes back and the drill's heartbeats reach the activity; a process that dies mid-drill is replaced and the
// drill runs again as the next attempt, and one that keeps dying fails the drill non-retryably with the cause. Real
// forked processes running a stand-in script that speaks the training process's protocol (so the test needs no
// backend and controls each death).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { DrillInput, DrillReport } from '../../activities/drill-types';
import { TrainerSupervisor } from '../../activities/trainer-process/supervisor';

/** Dies (SIGKILL) on its first `DIE` drills, counted in COUNT_FILE across processes; then reports. */
const STAND_IN = `
const fs = require('fs');
const count = () => Number(fs.existsSync(process.env.COUNT_FILE) ? fs.readFileSync(process.env.COUNT_FILE, 'utf8') : 0);
process.send({ t: 'ready', backend: 'stand-in', ms: 1 });
setInterval(() => process.send({ t: 'alive' }), 100);
process.on('disconnect', () => process.exit(0));
process.on('message', (m) => {
  if (m.t !== 'task' || m.activity !== 'runDrill') return;
  const n = count() + 1;
  fs.writeFileSync(process.env.COUNT_FILE, String(n));
  if (n <= Number(process.env.DIE)) return process.kill(process.pid, 'SIGKILL');
  process.send({ t: 'task-beat', id: m.id, details: { phase: 'train', step: 7 } });
  process.send({ t: 'task-done', id: m.id, result: { runId: m.input.runId, verified: true, attempt: m.info.attempt, n } });
});
`;

describe('drills in training processes', function () {
  this.timeout(60_000);
  let dir: string;
  let entry: string;
  const supervisors: TrainerSupervisor[] = [];
  const saved = { ...process.env };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-supervisor-drill-'));
    entry = path.join(dir, 'stand-in.js');
    fs.writeFileSync(entry, STAND_IN);
    process.env.COUNT_FILE = path.join(dir, 'count');
  });
  afterEach(() => {
    supervisors.splice(0).forEach((s) => s.close());
    process.env = { ...saved };
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const drill = (die: number) => {
    process.env.DIE = String(die);
    const lines: string[] = [];
    const sup = new TrainerSupervisor({ entry, spares: 1, maxDeathsAtStep: 3, say: (l) => lines.push(l) });
    supervisors.push(sup);
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const input = { runId: 'r', spec: {} } as unknown as DrillInput;
    const result = env.run(() => sup.runDrill(Context.current(), input)) as Promise<unknown> as Promise<
      DrillReport & { n: number }
    >;
    return { result, beats, lines };
  };

  it("returns the training process's report and passes its heartbeats on", async () => {
    const { result, beats } = drill(0);
    const report = await result;
    assert.equal(report.verified, true);
    assert.equal(report.n, 1, 'one drill, in one process');
    assert.deepEqual(beats, [{ phase: 'train', step: 7 }]);
  });

  it('a process that dies mid-drill is replaced and the drill runs again', async () => {
    const { result, lines } = drill(2);
    const report = await result;
    assert.equal(report.n, 3, 'two deaths, then the third process reported');
    assert.equal((report as unknown as { attempt: number }).attempt, 3, 'run again as the next attempts would be');
    assert.equal(
      lines.filter((l) => /training process of the drill of run r died: killed by SIGKILL/.test(l)).length,
      2,
    );
  });

  it('a drill that kills every process it runs in fails, non-retryably, with the cause', async () => {
    const { result } = drill(100);
    await assert.rejects(result, (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, 'TrainingCrashLoop');
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, /drill of run r: the training process died 3 times; last cause: killed by SIGKILL/);
      return true;
    });
  });
});
