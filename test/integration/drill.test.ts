// Recovery drills on real runs (real dev server, real worker processes): a checkpoint restored in a fresh trainer and
// trained forward reproduces the next stored checkpoint bit for bit, on a finished run and on a running one, without
// writing into the run or changing its result; a damaged checkpoint fails the drill, names the blob and raises one
// alert at a real webhook; a scheduled drill runs, is listed, and goes away with the run (or with --remove).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { ScheduleNotFoundError } from '@temporalio/client';
import type { DrillResult, LastDrill } from '../../activities/drill-types';
import { drillScheduleId } from '../../activities/drill-types';
import { DRILL_WORKFLOW, progressQuery } from '../../workflows/definitions';
import type { RunResult } from '../../workflows/progress';
import { cli, cliAsync, waitFor, writeSpec, type TestCluster } from '../helpers/cluster';
import { smallSpec, useCluster } from '../helpers/fixtures';
import { startS3Server } from '../helpers/s3-server';

// 12 steps an epoch, 36 in all, chunks of 5: checkpoints at 5, 10, ... 35, 36 (the newest 5 kept).
const spec = smallSpec({ epochs: 3 });

interface Alert {
  text?: string;
  kind?: string;
  runId?: string;
  checkpointId?: string | null;
}

describe('recovery drills: restore in a fresh trainer, replay, compare bit for bit', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let cluster: TestCluster;
  let webhook: http.Server;
  let webhookUrl: string;
  const alerts: Alert[] = [];
  let finished: RunResult;

  const manifests = (
    runId: string,
  ): Array<{ id: string; step: number; blobs: Array<{ name: string; sha256: string }> }> =>
    fx.manifests(runId).sort((a, b) => a.step - b.step);
  const storeListing = (runId: string) => {
    const root = path.join(cluster.dir, '.data', 'checkpoints', runId);
    const out: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else out.push(`${path.relative(root, p)} ${fs.statSync(p).size} ${fs.statSync(p).mtimeMs}`);
      }
    };
    walk(root);
    return out.sort();
  };
  const drill = (args: string[]) => cli(cluster, ['drill', ...args]);

  before(async function () {
    cluster = fx.cluster;
    webhook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        try {
          alerts.push(JSON.parse(body) as Alert);
        } catch {
          alerts.push({ text: body });
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hook`;
    // The finished run every test drills or compares with (each test works on it without changing it, so any one
    // test passes alone): trained here by a worker that is gone before the first test starts its own.
    const w = await worker();
    finished = trainFinished('done', w.output);
    await w.kill();
  });
  after(async function () {
    await new Promise((resolve) => webhook?.close(resolve));
  });
  // Each test counts the alerts it caused.
  beforeEach(function () {
    alerts.length = 0;
  });

  const worker = (paced?: { stepMs: number }) =>
    fx.worker({ env: { DURABLE_TRAIN_ALERT_WEBHOOK: webhookUrl }, ...(paced ? { paced } : {}) });
  /** Trains `spec` to the end as run `runId` (a worker must be running). */
  const trainFinished = (runId: string, output: () => string): RunResult => {
    const file = writeSpec(cluster.dir, 'spec.json', spec);
    const start = cli(cluster, ['start', '--spec', file, '--run-id', runId, '--wait', '--json']);
    assert.equal(start.code, 0, start.stderr + output());
    return start.json<{ result: RunResult }>().result;
  };

  it('a finished run: the second-newest checkpoint replays to the newest, bit for bit; nothing is written', async function () {
    const w = await worker();
    const ms = manifests('done');
    const [restored, compared] = ms.slice(-2);
    const before = storeListing('done');

    const r = drill(['done', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr + w.output());
    const d = r.json<DrillResult>();
    assert.equal(d.verified, true, JSON.stringify(d.differences));
    assert.deepEqual(d.differences, []);
    assert.deepEqual(d.checkpoint, { id: restored.id, step: restored.step });
    assert.deepEqual(d.compared, { id: compared.id, step: compared.step });
    assert.equal(d.stepsReplayed, compared.step - restored.step);
    assert.equal(d.blobsCompared, compared.blobs.length);
    // Measured: reading, verifying and rebuilding a checkpoint takes time (an unset field stays 0).
    assert.ok(d.restoreSeconds > 0 && Number.isFinite(d.restoreSeconds), `restoreSeconds ${d.restoreSeconds}`);
    assert.equal(d.runEnded, true, 'the run had finished');
    assert.equal(d.specChanged, false, 'the spec from the run is the one that wrote its checkpoints');
    assert.equal(d.alerted, null, 'no alert for a verified drill');
    assert.deepEqual(storeListing('done'), before, 'the drill wrote nothing into the run store');

    // An explicit checkpoint and step count: the one 5 steps after an older checkpoint.
    const older = ms[ms.length - 4];
    const k = drill(['done', '--checkpoint', older.id, '--steps', '5', '--json']);
    assert.equal(k.code, 0, k.stdout + k.stderr);
    assert.equal(k.json<DrillResult>().compared?.id, ms[ms.length - 3].id);

    // Human output names both checkpoints.
    const human = drill(['done']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`verified[\\s\\S]*${restored.id}[\\s\\S]*${compared.id}`));
    assert.equal(alerts.length, 0);
  });

  it('refuses clearly: unknown run or checkpoint (3), nothing later to compare with or bad --steps (2)', async function () {
    await worker();
    const ms = manifests('done');
    const newest = ms[ms.length - 1];
    // Each refusal below is made before any drill workflow starts: the server holds as many drills after as before.
    const drillsOnServer = async () => {
      let n = 0;
      for await (const w of cluster.client.workflow.list({ query: `WorkflowType = '${DRILL_WORKFLOW}'` }))
        n += w ? 1 : 0;
      return n;
    };
    const drillsBefore = await drillsOnServer();
    const unknownRun = drill(['no-such-run']);
    assert.equal(unknownRun.code, 3, unknownRun.stderr);
    assert.match(unknownRun.stderr, /no run no-such-run/);
    const unknownList = drill(['--list', 'no-such-run']);
    assert.equal(unknownList.code, 3, unknownList.stderr);
    assert.match(unknownList.stderr, /drill --list: no run no-such-run/);
    const unknownCkpt = drill(['done', '--checkpoint', 'step-000000007-0123abcd']);
    assert.equal(unknownCkpt.code, 3, unknownCkpt.stderr);
    assert.match(unknownCkpt.stderr, /no checkpoint step-000000007-0123abcd/);
    const last = drill(['done', '--checkpoint', newest.id]);
    assert.equal(last.code, 2, last.stderr);
    assert.match(last.stderr, new RegExp(`no checkpoint after ${newest.id}`));
    const noSuchStep = drill(['done', '--checkpoint', ms[ms.length - 2].id, '--steps', '2']);
    assert.equal(noSuchStep.code, 2, noSuchStep.stderr);
    assert.match(noSuchStep.stderr, /no checkpoint at step/);
    assert.equal(drill(['done', '--steps', '0']).code, 2);
    const tooFar = drill(['done', '--steps', '99999']);
    assert.equal(tooFar.code, 2, tooFar.stderr);
    assert.match(tooFar.stderr, /steps must be an integer in 1\.\.\d+ \(one chunk\), got 99999/);
    assert.equal(drill(['done', '--every', 'soon']).code, 2);
    assert.equal(await drillsOnServer(), drillsBefore, 'no refused request started a drill workflow');
  });

  it('a running run: verified, recorded in its progress and status, and the run ends exactly as undisturbed', async function () {
    // Paced (each step 250 ms longer, same numbers): the run is still training when the drill reports.
    const w = await worker({ stepMs: 250 });
    const file = writeSpec(cluster.dir, 'spec.json', spec);
    assert.equal(cli(cluster, ['start', '--spec', file, '--run-id', 'live', '--json']).code, 0);
    await waitFor('two checkpoints of the running run', async () => {
      const dir = path.join(cluster.dir, '.data', 'checkpoints', 'live', 'manifests');
      return fs.existsSync(dir) && fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length >= 2;
    });
    const r = drill(['live', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr + w.output());
    const d = r.json<DrillResult>();
    assert.equal(d.verified, true, JSON.stringify(d.differences));
    assert.equal(d.runEnded, false, 'the run was still running when the drill reported');

    const status = cli(cluster, ['status', 'live', '--json']);
    assert.equal(status.code, 0, status.stderr);
    const last = status.json<{ lastDrill: LastDrill | null }>().lastDrill;
    assert.ok(last, status.stdout);
    assert.equal(last.drillId, d.drillId);
    assert.equal(last.verified, true);
    assert.equal(last.checkpointId, d.checkpoint?.id);
    assert.match(cli(cluster, ['status', 'live']).stdout, /last drill .*verified/);

    const result = (await cluster.client.workflow.getHandle('live').result()) as RunResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.weightsSha256, finished.weightsSha256, 'the drill did not disturb the run');
  });

  it('a paused run on S3: verified, recorded in its progress, and the resumed run ends exactly as undisturbed', async function () {
    const s3 = await startS3Server();
    try {
      const s3env = {
        DURABLE_TRAIN_S3_ENDPOINT: s3.endpoint,
        AWS_REGION: s3.region,
        AWS_ACCESS_KEY_ID: s3.accessKey,
        AWS_SECRET_ACCESS_KEY: s3.secretKey,
      };
      const w = await fx.worker({ env: { ...s3env, DURABLE_TRAIN_ALERT_WEBHOOK: webhookUrl }, paced: { stepMs: 100 } });
      const file = writeSpec(cluster.dir, 's3.json', {
        ...spec,
        checkpoint: { storage: `s3://${s3.bucket}/runs` },
      });
      assert.equal(cli(cluster, ['start', '--spec', file, '--run-id', 'on-s3', '--json']).code, 0);
      const handle = cluster.client.workflow.getHandle('on-s3');
      await waitFor('two chunks of the run on S3', async () => {
        const p = await handle.query(progressQuery);
        return p.chunks >= 2;
      });
      assert.equal(cli(cluster, ['pause', 'on-s3']).code, 0);
      await waitFor('the run paused', async () => (await handle.query(progressQuery)).status === 'paused');

      const r = drill(['on-s3', '--json']);
      assert.equal(r.code, 0, r.stdout + r.stderr + w.output());
      const d = r.json<DrillResult>();
      assert.equal(d.verified, true, JSON.stringify(d.differences));
      assert.ok(d.stepsReplayed > 0);
      assert.equal(d.runEnded, false);
      const p = await handle.query(progressQuery);
      assert.equal(p.status, 'paused', 'the drill did not resume the run');
      assert.equal(p.lastDrill?.drillId, d.drillId);
      assert.equal(p.lastDrill?.verified, true);

      assert.equal(cli(cluster, ['resume', 'on-s3']).code, 0);
      const result = (await handle.result()) as RunResult;
      assert.equal(result.weightsSha256, finished.weightsSha256, 'same weights as the undisturbed run on local disk');
    } finally {
      await s3.stop();
    }
  });

  it('a scheduled drill runs, is listed, and its schedule goes away when the run has ended; --remove deletes one', async function () {
    await worker();
    // A schedule whose first drill is an hour away: a second one for the run is refused; removed by hand.
    assert.equal(drill(['done', '--every', '1h']).code, 0);
    await cluster.client.schedule.getHandle(drillScheduleId('done')).describe();
    const again = drill(['done', '--every', '2s']);
    assert.equal(again.code, 4, 'one schedule per run');
    const rm = drill(['--remove', 'done']);
    assert.equal(rm.code, 0, rm.stderr);
    await assert.rejects(
      cluster.client.schedule.getHandle(drillScheduleId('done')).describe(),
      (err: unknown) => err instanceof ScheduleNotFoundError,
    );
    assert.equal(drill(['--remove', 'done']).code, 3, 'nothing left to remove');

    const s = drill(['done', '--every', '2s', '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.json<{ scheduleId: string }>().scheduleId, drillScheduleId('done'));

    const listed = await waitFor(
      'a scheduled drill in the list',
      async () => {
        const l = drill(['--list', 'done', '--json']);
        if (l.code !== 0) throw new Error(l.stderr);
        const out = l.json<{ drills: Array<{ scheduled: boolean; result: DrillResult | null }> }>();
        return out.drills.find((x) => x.scheduled && x.result) ?? null;
      },
      120_000,
      500,
    );
    assert.equal(listed.result?.verified, true);
    assert.equal(listed.result?.runEnded, true);
    assert.equal(listed.result?.scheduleRemoved, true, 'the drill of an ended run removed its schedule');
    await assert.rejects(
      cluster.client.schedule.getHandle(drillScheduleId('done')).describe(),
      (err: unknown) => err instanceof ScheduleNotFoundError,
    );
    const human = drill(['--list', 'done']);
    assert.match(human.stdout, /no drill schedule/);
    assert.match(human.stdout, /\(scheduled\)\s+verified/);

    assert.equal(alerts.length, 0);
  });

  it('one altered byte in the compared checkpoint: the drill fails naming it (exit 1) and one alert arrives', async function () {
    const w = await worker();
    // A run of its own to damage (the shared one stays intact for the other tests).
    assert.equal(trainFinished('damaged', w.output).weightsSha256, finished.weightsSha256);
    const ms = manifests('damaged');
    const compared = ms[ms.length - 1];
    // A weight's blob: weights change every step, so no other checkpoint shares it.
    const blob = compared.blobs.find((b) => b.name.startsWith('model/'))!;
    const file = path.join(cluster.dir, '.data', 'checkpoints', 'damaged', 'blobs', blob.sha256);
    const bytes = fs.readFileSync(file);
    bytes[8] ^= 0x01;
    fs.writeFileSync(file, bytes);

    // Async: the webhook lives in this process and must answer while the CLI waits.
    const r = await cliAsync(cluster, ['drill', 'damaged', '--json']);
    assert.equal(r.code, 1, r.stdout + r.stderr + w.output());
    const d = r.json<DrillResult>();
    assert.equal(d.verified, false);
    assert.equal(d.compared?.id, compared.id);
    const named = d.differences.filter((x) => x.checkpointId === compared.id && x.name === blob.name);
    assert.ok(named.length >= 1, JSON.stringify(d.differences));
    assert.ok(
      named.some((x) => /element 2 differs/.test(x.reason)),
      `the first differing element is named: ${JSON.stringify(named)}`,
    );
    assert.equal(d.differences.filter((x) => x.name !== blob.name).length, 0, JSON.stringify(d.differences));
    assert.equal(d.alerted, true, JSON.stringify(alerts) + w.output());

    assert.equal(alerts.length, 1, JSON.stringify(alerts));
    const a = alerts[0];
    assert.equal(a.kind, 'drill-failed');
    assert.equal(a.runId, 'damaged');
    assert.equal(a.checkpointId, compared.id);
    assert.match(a.text ?? '', /damaged/);
    assert.match(a.text ?? '', new RegExp(compared.id));

    const human = await cliAsync(cluster, ['drill', 'damaged']);
    assert.equal(human.code, 1);
    assert.match(
      human.stdout,
      new RegExp(`FAILED[\\s\\S]*differs: ${compared.id} ${blob.name.replace(/[/]/g, '\\/')}`),
    );
  });
});
