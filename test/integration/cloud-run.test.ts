// Runs with checkpoints on Google Cloud Storage and Azure Blob emulators (fake-gcs-server, Azurite), real dev server,
// real worker processes: killed mid-chunk with the newest checkpoint damaged on the server, each ends with the weights
// of the run on local disk; a run on Azurite over HTTPS authenticates with Entra ID (a managed identity) and ends so
// too; a run's dataset, metrics log and TensorBoard files live in the cloud store and `export` reads its checkpoint
// from there; and `start` refuses storage the server turns away, naming why, with nothing started.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { loadForInference } from '../../index';
import { openStore } from '../../storage';
import { readMetricsLog } from '../../telemetry/metrics-log';
import { TAGS, tensorboardPrefix } from '../../telemetry/tensorboard';
import type { Prediction } from '../../training/inference';
import type { RunResult } from '../../workflows/progress';
import { BREAST_CANCER_CSV, binarySpec } from '../helpers/breast-cancer';
import {
  selfSignedCert,
  startAzurite,
  startGcsServer,
  type AzureTestServer,
  type GcsTestServer,
} from '../helpers/cloud-emulators';
import { startIdentityProcess } from '../helpers/entra-identity';
import { cli, waitFor, writeSpec } from '../helpers/cluster';
import { deterministicLog, useCluster } from '../helpers/fixtures';
import { tensorboardRead } from '../helpers/tensorboard-read';
import { killedAndDamagedRunEndsExact, localReference, storageRunSpec } from '../helpers/storage-run';

describe('runs with checkpoints on cloud storage emulators (real dev server, worker processes)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let gcs: GcsTestServer;
  let azure: AzureTestServer;
  let reference: string;

  before(async function () {
    [gcs, azure] = await Promise.all([startGcsServer(), startAzurite()]);
    reference = await localReference(fx);
  });
  after(async function () {
    await Promise.all([gcs?.stop(), azure?.stop()]);
  });

  it('on Cloud Storage: SIGKILLed mid-chunk, a byte flipped in the newest blob, ends with the local weights', async function () {
    await killedAndDamagedRunEndsExact(
      fx,
      { name: 'gcs', storage: `gs://${gcs.bucket}/runs`, env: gcs.env },
      reference,
    );
  });

  it('on Azure Blob: SIGKILLed mid-chunk, a byte flipped in the newest blob, ends with the local weights', async function () {
    await killedAndDamagedRunEndsExact(
      fx,
      { name: 'azure', storage: `az://${azure.container}/runs`, env: azure.env },
      reference,
    );
  });

  it('on Azure Blob over HTTPS with Entra ID (a managed identity, no key): the run ends with the local weights', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-entra-run-'));
    const tls = selfSignedCert(dir);
    const secret = 'identity-header-secret';
    const [secure, identity] = await Promise.all([startAzurite({ tls, oauth: true }), startIdentityProcess(secret)]);
    try {
      // What a worker on App Service would have: no key, no SAS, no connection string; the emulator's certificate.
      const env = {
        AZURE_STORAGE_CONNECTION_STRING: '',
        NODE_EXTRA_CA_CERTS: tls.cert,
        DURABLE_TRAIN_AZURE_BLOB_ENDPOINT: `${secure.endpoint}/${secure.account}`,
        IDENTITY_ENDPOINT: identity.endpoint,
        IDENTITY_HEADER: secret,
      };
      const w = await fx.worker({ env });
      const file = writeSpec(fx.cluster.dir, 'entra.json', storageRunSpec(`az://${secure.container}/entra`));
      const r = cli(fx.cluster, ['start', '--spec', file, '--run-id', 'on-entra', '--wait', '--json'], { env });
      assert.equal(r.code, 0, r.stderr + w.output());
      const result = r.json<{ result: RunResult }>().result;
      assert.equal(result.status, 'completed');
      assert.equal(result.weightsSha256, reference);
      // The identity process's lines are read when this process's event loop turns (the CLI ran synchronously).
      await waitFor(
        'the CLI and the worker to have asked for tokens',
        async () => identity.requests() >= 2,
        10_000,
        50,
      );
    } finally {
      await Promise.all([secure.stop(), identity.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("on both: the run's dataset, metrics log and TensorBoard files are in the store, and export reads its checkpoint from there", async function () {
    const { cluster } = fx;
    const env = { ...gcs.env, ...azure.env };
    const csv = fs.readFileSync(BREAST_CANCER_CSV);
    // A small binary model on the breast-cancer rows: 2 epochs of 15 steps, commits every 10 steps.
    const spec = (data: string, storage: string) =>
      binarySpec({
        model: {
          layers: [
            { type: 'dense', units: 8, activation: 'relu' },
            { type: 'dense', units: 1, activation: 'sigmoid' },
          ],
        },
        dataset: { format: 'csv', path: data, label: 'target', validationFraction: 0.1 },
        epochs: 2,
        chunkSteps: 10,
        checkpoint: { storage },
      });
    const runs = [
      { runId: 'tele-local', data: `file://${BREAST_CANCER_CSV}`, storage: 'file://.data/tele' },
      { runId: 'tele-gcs', data: `gs://${gcs.bucket}/data/bc.csv`, storage: `gs://${gcs.bucket}/tele` },
      { runId: 'tele-azure', data: `az://${azure.container}/data/bc.csv`, storage: `az://${azure.container}/tele` },
    ];
    // The dataset itself is an object in each cloud store.
    await openStore(`gs://${gcs.bucket}/data`, '/', { ...process.env, ...env }).writeAtomic('bc.csv', csv);
    await openStore(`az://${azure.container}/data`, '/', { ...process.env, ...env }).writeAtomic('bc.csv', csv);
    const w = await fx.worker({ env });
    // Started one after the other, trained side by side by the one worker.
    for (const r of runs) {
      const file = writeSpec(cluster.dir, `${r.runId}.json`, spec(r.data, r.storage));
      const started = cli(cluster, ['start', '--spec', file, '--run-id', r.runId, '--json'], { env });
      assert.equal(started.code, 0, started.stderr + w.output());
    }
    const results = new Map<string, RunResult>();
    for (const r of runs) results.set(r.runId, await cluster.client.workflow.getHandle(r.runId).result());
    // Nothing of the cloud runs is on the disk of the worker or the CLI (both run in cluster.dir): only their specs.
    const onDisk = (fs.readdirSync(cluster.dir, { recursive: true }) as string[]).filter((p) =>
      /tele-(gcs|azure)/.test(p),
    );
    assert.deepEqual(onDisk.sort(), ['tele-azure.json', 'tele-gcs.json']);
    const local = results.get('tele-local')!;
    assert.equal(local.status, 'completed');
    const localStore = openStore(runs[0].storage, cluster.dir);
    const localLog = deterministicLog(await readMetricsLog(localStore, 'tele-local', local.step));
    assert.ok(localLog.rows.length >= 20 && localLog.evals.length >= 2, 'a log with steps and evaluations');
    const tbDir = path.join(cluster.dir, 'tb');
    const rows = fs.readFileSync(BREAST_CANCER_CSV, 'utf8').split('\n').slice(0, 21).join('\n') + '\n';
    fs.writeFileSync(path.join(cluster.dir, 'rows.csv'), rows);
    let localPreds: Prediction[] | undefined;
    for (const r of runs) {
      const result = results.get(r.runId)!;
      assert.equal(result.weightsSha256, local.weightsSha256, `${r.runId}: the numbers of the run on local disk`);
      const store = openStore(r.storage, cluster.dir, { ...process.env, ...env });
      // The metrics log is read back from the run's own store, step for step the local run's.
      assert.deepEqual(deterministicLog(await readMetricsLog(store, r.runId, result.step)), localLog, r.runId);
      // The TensorBoard event files too: copied out of the store, TensorBoard's own reader shows every step once.
      for (const key of await store.list(tensorboardPrefix(r.runId))) {
        fs.mkdirSync(path.dirname(path.join(tbDir, key)), { recursive: true });
        fs.writeFileSync(path.join(tbDir, key), await store.read(key));
      }
      // Export from the stored checkpoint; the exported model predicts what `predict` reads from the store.
      const out = path.join(cluster.dir, `export-${r.runId}`);
      const exported = cli(cluster, ['export', r.runId, '--out', out, '--json'], { env });
      assert.equal(exported.code, 0, exported.stderr);
      assert.equal(exported.json<{ checkpoint: { step: number } }>().checkpoint.step, result.step);
      if (r.runId !== 'tele-local') {
        // Exported into the store itself: the same files, byte for byte; a second export there needs --force.
        const url = `${r.storage}/exports/${r.runId}`;
        const inStore = cli(cluster, ['export', r.runId, '--out', url, '--json'], { env });
        assert.equal(inStore.code, 0, inStore.stderr);
        assert.equal(inStore.json<{ modelJson: string }>().modelJson, `${url}/model.json`);
        const exports = openStore(url, cluster.dir, { ...process.env, ...env });
        const names = fs.readdirSync(out).sort();
        assert.deepEqual((await exports.list('')).sort(), names);
        for (const name of names)
          assert.ok(Buffer.from(await exports.read(name)).equals(fs.readFileSync(path.join(out, name))), name);
        const again = cli(cluster, ['export', r.runId, '--out', url], { env });
        assert.equal(again.code, 2, again.stderr);
        assert.match(again.stderr, /is not empty; pass --force/);
      }
      const predicted = cli(cluster, ['predict', r.runId, '--input', 'rows.csv', '--json'], { env });
      assert.equal(predicted.code, 0, predicted.stderr);
      const viaRun = predicted.json<{ predictions: Prediction[] }>().predictions;
      const model = await loadForInference(out);
      const viaExport = await model.predictFile(path.join(cluster.dir, 'rows.csv'));
      model.dispose();
      assert.equal(viaExport.length, 20);
      // The checkpoint's forward pass and the exported Layers model agree to float32 rounding.
      viaExport.forEach((p, i) => {
        assert.equal(p.class, viaRun[i].class, `${r.runId} row ${i}`);
        p.probabilities!.forEach((v, c) =>
          assert.ok(Math.abs(v - viaRun[i].probabilities![c]) < 1e-6, `${r.runId} row ${i}`),
        );
      });
      localPreds ??= viaExport;
      assert.deepEqual(viaExport, localPreds, `${r.runId}: as the local run's export does`);
    }
    const tb = tensorboardRead(tbDir).scalars;
    const steps = Array.from({ length: local.step }, (_, i) => i + 1);
    for (const r of runs) {
      const run = tb[`${r.runId}/tensorboard`];
      assert.deepEqual(
        run[TAGS.loss].map(([s]) => s),
        steps,
        `${r.runId}: each step once`,
      );
      for (const tag of [TAGS.loss, TAGS.accuracy, TAGS.validationLoss, TAGS.testLoss]) {
        assert.ok(run[tag]?.length, `${r.runId} ${tag}`);
        assert.deepEqual(run[tag], tb['tele-local/tensorboard'][tag], `${r.runId} ${tag}`);
      }
    }
    await w.kill('SIGTERM');
  });

  it('start refuses a missing bucket or container, a wrong key and a traversal prefix, naming the cause', async function () {
    const wrongKey = { AZURE_STORAGE_CONNECTION_STRING: azure.connectionString(undefined, 'd3Jvbmcta2V5') };
    const cases: Array<[string, string, NodeJS.ProcessEnv, RegExp]> = [
      [
        'no-bucket',
        'gs://no-such-bucket-here/runs',
        gcs.env,
        /gs:\/\/no-such-bucket-here\/runs refused: .*NoSuchBucket/,
      ],
      [
        'no-container',
        'az://no-such-container/runs',
        azure.env,
        /az:\/\/no-such-container\/runs refused: .*ContainerNotFound/,
      ],
      ['wrong-key', `az://${azure.container}/runs`, wrongKey, /refused: .*HTTP 403/],
      ['traversal', `gs://${gcs.bucket}/runs/../../other`, gcs.env, /"\.\." segment in its prefix/],
    ];
    for (const [runId, storage, env, why] of cases) {
      const file = writeSpec(fx.cluster.dir, `${runId}.json`, storageRunSpec(storage));
      const r = cli(fx.cluster, ['start', '--spec', file, '--run-id', runId], { env });
      assert.equal(r.code, 2, `${runId}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, why, runId);
      await assert.rejects(fx.cluster.client.workflow.getHandle(runId).describe(), WorkflowNotFoundError, runId);
    }
  });
});
