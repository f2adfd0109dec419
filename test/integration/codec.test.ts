// Payload encryption for real: a dev server, a worker and the CLI with DURABLE_TRAIN_CODEC_KEYS; the history read
// back with the `temporal` CLI holds none of the spec's values; runs complete; keys rotate; the codec server answers
// the Web UI's /decode and /encode with CORS and a bearer token.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../../cli/dev-server';
import type { RunResult } from '../../workflows/progress';
import { cli, DIST, waitFor, writeSpec, type TestCluster } from '../helpers/cluster';
import { smallSpec, useCluster } from '../helpers/fixtures';
import { temporalHistory } from '../helpers/temporal-history';

const keyA = randomBytes(32).toString('base64');
const keyB = randomBytes(32).toString('base64');

// Values that appear nowhere but in this spec: if the history held the spec in clear, they would show.
const SECRET_STORAGE = 'file://.data/ckpt-codec-7f3a9c';
const SECRET_LR = 0.0031337;
const SECRET_SEED = 90417;
const spec = smallSpec({
  dataset: { name: 'mnist', trainLimit: 100, testLimit: 50, validationFraction: 0 },
  epochs: 1,
  chunkSteps: 1,
  seed: SECRET_SEED,
  optimizer: { name: 'adam', learningRate: SECRET_LR },
  checkpoint: { storage: SECRET_STORAGE },
});
const specValues = ['ckpt-codec-7f3a9c', String(SECRET_LR), String(SECRET_SEED)];

describe('payload encryption: AES-256-GCM codec with key ids (real dev server, worker, temporal CLI)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let cluster: TestCluster;
  before(function () {
    cluster = fx.cluster;
  });

  it('keeps spec values out of the history, completes the run, and reads it back with rotated keys', async function () {
    // Control: without the codec the same check finds the values (it can fail).
    const w0 = await fx.worker();
    const plainFile = writeSpec(cluster.dir, 'plain.json', spec);
    const plain = cli(cluster, ['start', '--spec', plainFile, '--run-id', 'codec-plain', '--wait', '--json']);
    assert.equal(plain.code, 0, plain.stderr + w0.output());
    const plainHistory = temporalHistory(cluster, 'codec-plain');
    for (const v of specValues) assert.ok(plainHistory.includes(v), `control: ${v} in the clear history`);
    await w0.kill();

    const envA = { DURABLE_TRAIN_CODEC_KEYS: `a=${keyA}` };
    const w = await fx.worker({ env: envA });
    const file = writeSpec(cluster.dir, 'enc.json', spec);
    const r = cli(cluster, ['start', '--spec', file, '--run-id', 'codec-1', '--wait', '--json'], { env: envA });
    assert.equal(r.code, 0, r.stderr + w.output());
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 2);

    const history = temporalHistory(cluster, 'codec-1');
    for (const v of specValues) assert.ok(!history.includes(v), `${v} must not be readable in the history`);
    assert.ok(!history.includes('weightsSha256'), 'results are encrypted too');
    assert.ok(history.includes(result.weightsSha256!) === false, 'the result hash is encrypted');
    assert.match(history, /binary\/encrypted|YmluYXJ5L2VuY3J5cHRlZA/); // the encoding, plain or base64

    // Without the key: a clear error naming the key id, not "unknown encoding".
    const noKey = cli(cluster, ['status', 'codec-1', '--json']);
    assert.equal(noKey.code, 2, noKey.stderr);
    assert.match(noKey.stderr, /encrypted \(key id "a"\) and DURABLE_TRAIN_CODEC_KEYS is not set/);
    const wrongKey = cli(cluster, ['status', 'codec-1'], { env: { DURABLE_TRAIN_CODEC_KEYS: `b=${keyB}` } });
    assert.equal(wrongKey.code, 2, wrongKey.stderr);
    assert.match(
      wrongKey.stderr,
      /encrypted with key id "a", which DURABLE_TRAIN_CODEC_KEYS does not hold \(it holds "b"\)/,
    );
    for (const out of [noKey.stderr, wrongKey.stderr]) assert.ok(!out.includes(keyA) && !out.includes(keyB));

    // Rotation: B now encrypts, A still decrypts the old run (status, report).
    const rotated = { DURABLE_TRAIN_CODEC_KEYS: `b=${keyB},a=${keyA}` };
    const status = cli(cluster, ['status', 'codec-1', '--json'], { env: rotated });
    assert.equal(status.code, 0, status.stderr);
    const view = status.json<{ status: string; result: RunResult }>();
    assert.equal(view.status, 'completed');
    assert.equal(view.result.weightsSha256, result.weightsSha256);
    const html = path.join(cluster.dir, 'codec-1.html');
    const report = cli(cluster, ['report', 'codec-1', '--out', html], { env: rotated });
    assert.equal(report.code, 0, report.stderr);
    assert.ok(fs.readFileSync(html, 'utf8').includes('ckpt-codec-7f3a9c'), 'the report shows the decrypted spec');

    // A new run with the rotated keys is encrypted with B: A alone cannot read it.
    await w.kill();
    const w2 = await fx.worker({ env: rotated });
    const r2 = cli(cluster, ['start', '--spec', file, '--run-id', 'codec-2', '--wait', '--json'], { env: rotated });
    assert.equal(r2.code, 0, r2.stderr + w2.output());
    const onlyA = cli(cluster, ['status', 'codec-2'], { env: envA });
    assert.notEqual(onlyA.code, 0);
    assert.match(onlyA.stderr, /key id "b", which DURABLE_TRAIN_CODEC_KEYS does not hold/);
    // One run this client cannot decrypt does not hide the others from `runs list`.
    const listed = cli(cluster, ['runs', 'list', '--json'], { env: envA });
    assert.equal(listed.code, 0, listed.stderr);
    const rows = listed.json<Array<{ runId: string; model: string | null; unreadable?: string }>>();
    assert.ok(rows.some((row) => row.runId === 'codec-1' && row.model !== null && !row.unreadable));
    assert.match(rows.find((row) => row.runId === 'codec-2')?.unreadable ?? '', /key id "b"/);
  });

  it('encrypts failure messages: the reason a run failed is unreadable in the history, status and health decrypt it', async function () {
    // The worker refuses a dataset outside its data roots (the CLI's quick check passes): the refusal names the file.
    const data = path.join(cluster.dir, 'secret-dataset-9b1e.csv');
    fs.writeFileSync(data, 'a,label\n1,x\n2,y\n3,x\n4,y\n');
    const roots = path.join(cluster.dir, 'only-here');
    fs.mkdirSync(roots, { recursive: true });
    const envA = { DURABLE_TRAIN_CODEC_KEYS: `a=${keyA}` };
    const w = await fx.worker({ env: { ...envA, DURABLE_TRAIN_DATA_ROOTS: roots } });
    const failing = smallSpec({
      model: { layers: [{ type: 'dense', units: 2 }] },
      dataset: { format: 'csv', path: 'file://secret-dataset-9b1e.csv', label: 'label', testFraction: 0.25 },
      batchSize: 1,
    });
    const file = writeSpec(cluster.dir, 'failing.json', failing);
    const r = cli(cluster, ['start', '--spec', file, '--run-id', 'codec-failed', '--wait'], { env: envA });
    assert.notEqual(r.code, 0, r.stdout + w.output());
    await w.kill();
    const history = temporalHistory(cluster, 'codec-failed');
    assert.ok(!history.includes('secret-dataset-9b1e'), 'the failure message is encrypted in the history');
    assert.match(history, /Encoded failure/);
    const status = cli(cluster, ['status', 'codec-failed', '--json'], { env: envA });
    assert.equal(status.code, 0, status.stderr);
    const view = status.json<{ status: string; failure: string }>();
    assert.equal(view.status, 'failed');
    assert.match(view.failure, /secret-dataset-9b1e\.csv resolves to .*outside the directories/);
    const noKey = cli(cluster, ['status', 'codec-failed', '--json']);
    assert.ok(!(noKey.stdout + noKey.stderr).includes('secret-dataset-9b1e'), 'unreadable without the key');
    // health decrypts it the same way, and without the key says nothing of it.
    const health = cli(cluster, ['health', 'codec-failed', '--json'], { env: envA });
    const alerts = health.json<{ alerts: string[] }>().alerts;
    assert.ok(
      alerts.some((a) => /^run failed: .*secret-dataset-9b1e\.csv resolves to .*outside the directories/.test(a)),
      JSON.stringify(alerts),
    );
    const healthNoKey = cli(cluster, ['health', 'codec-failed', '--json']);
    assert.ok(
      !(healthNoKey.stdout + healthNoKey.stderr).includes('secret-dataset-9b1e'),
      'health: unreadable without the key',
    );
  });

  it('refuses malformed keys naming the entry, never echoing a key', function () {
    const short = randomBytes(16).toString('base64');
    const r = cli(cluster, ['status', 'codec-1'], { env: { DURABLE_TRAIN_CODEC_KEYS: `a=${keyA},b=${short}` } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /DURABLE_TRAIN_CODEC_KEYS entry 2 \(key id "b"\): the key must be 32 bytes in base64/);
    assert.ok(!r.stderr.includes(short) && !r.stderr.includes(keyA));
    const dup = cli(cluster, ['status', 'codec-1'], { env: { DURABLE_TRAIN_CODEC_KEYS: `a=${keyA},a=${keyB}` } });
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /key id "a" appears twice/);
  });

  it('serves the Web UI codec endpoint: /decode and /encode, CORS for the UI origin only, bearer token', async function () {
    const port = await freePort();
    const uiOrigin = 'http://127.0.0.1:18233';
    const token = randomBytes(18).toString('hex');
    const proc = spawn(
      process.execPath,
      [path.join(DIST, 'client.js'), 'codec-server', '--port', String(port), '--cors-origin', uiOrigin, '--json'],
      {
        env: {
          ...process.env,
          DURABLE_TRAIN_CODEC_KEYS: `b=${keyB},a=${keyA}`,
          DURABLE_TRAIN_CODEC_SERVER_TOKEN: token,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const url = await waitFor('the codec server', async () => {
        const line = out.split('\n').find((l) => l.startsWith('{'));
        return line ? (JSON.parse(line) as { url: string }).url : null;
      });
      assert.ok(!out.includes(token) && !out.includes(keyA), 'the server does not print its secrets');
      // The started event's input, as the UI sends it: proto3 JSON, metadata and data in base64.
      const history = await cluster.client.workflow.getHandle('codec-1').fetchHistory();
      const input = history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0];
      const asJson = {
        metadata: Object.fromEntries(
          Object.entries(input.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')]),
        ),
        data: Buffer.from(input.data!).toString('base64'),
      };
      const post = (route: string, body: unknown, headers: Record<string, string> = {}) =>
        fetch(`${url}${route}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
          body: JSON.stringify(body),
        });
      const auth = { authorization: `Bearer ${token}`, origin: uiOrigin };

      const decoded = await post('/decode', { payloads: [asJson] }, auth);
      assert.equal(decoded.status, 200);
      assert.equal(decoded.headers.get('access-control-allow-origin'), uiOrigin);
      const [p] = ((await decoded.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> })
        .payloads;
      assert.equal(Buffer.from(p.metadata.encoding, 'base64').toString(), 'json/plain');
      const value = JSON.parse(Buffer.from(p.data, 'base64').toString()) as { spec: { seed: number } };
      assert.equal(value.spec.seed, SECRET_SEED);

      // /encode then /decode round-trips, and encodes with the first key (b).
      const enc = (await (await post('/encode', { payloads: [p] }, auth)).json()) as { payloads: (typeof asJson)[] };
      assert.equal(Buffer.from(enc.payloads[0].metadata['encryption-key-id'], 'base64').toString(), 'b');
      const back = (await (await post('/decode', enc, auth)).json()) as { payloads: Array<{ data: string }> };
      assert.equal(back.payloads[0].data, p.data);

      // No token, a wrong token, another origin, a payload under an unknown key: refused, saying why.
      assert.equal((await post('/decode', { payloads: [asJson] }, { origin: uiOrigin })).status, 401);
      assert.equal((await post('/decode', { payloads: [asJson] }, { authorization: 'Bearer nope' })).status, 401);
      const preflight = await fetch(`${url}/decode`, {
        method: 'OPTIONS',
        headers: { origin: uiOrigin, 'access-control-request-method': 'POST' },
      });
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /X-Namespace/);
      const evil = await post('/decode', { payloads: [asJson] }, { ...auth, origin: 'http://evil.example' });
      assert.equal(evil.status, 403);
      assert.equal(evil.headers.get('access-control-allow-origin'), null);
      const unknown = await post(
        '/decode',
        {
          payloads: [
            { ...asJson, metadata: { ...asJson.metadata, 'encryption-key-id': Buffer.from('z').toString('base64') } },
          ],
        },
        auth,
      );
      assert.equal(unknown.status, 400);
      assert.match(((await unknown.json()) as { error: string }).error, /key id "z"/);
      assert.equal((await post('/decode', 'not an object', auth)).status, 400);
    } finally {
      proc.kill('SIGTERM');
    }
  });
});
