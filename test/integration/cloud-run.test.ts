// Runs with checkpoints on Google Cloud Storage and Azure Blob emulators (fake-gcs-server, Azurite), real dev server,
// real worker processes: killed mid-chunk with the newest checkpoint damaged on the server, each ends with the weights
// of the run on local disk; and `start` refuses storage the server turns away, naming why, with nothing started.
import * as assert from 'node:assert/strict';
import { WorkflowNotFoundError } from '@temporalio/client';
import { startAzurite, startGcsServer, type AzureTestServer, type GcsTestServer } from '../helpers/cloud-emulators';
import { cli, writeSpec } from '../helpers/cluster';
import { useCluster } from '../helpers/fixtures';
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
