// Secrets stay secret: a run that uses each of them for real (S3 credentials on SeaweedFS, a Temporal API key
// checked by a TLS proxy in front of the dev server, codec keys encrypting the payloads, a checkpoint signing key),
// then every place they could leak is searched for each: worker and CLI output (debug logs included), the history as
// the `temporal` CLI prints it, the server log, every object in the bucket (manifests, blobs), the HTML report, the
// exported model and the messages of commands that fail because a secret is wrong.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { RunResult } from '../../workflows/progress';
import { cli, writeSpec, type CliResult, type TestCluster } from '../helpers/cluster';
import { smallSpec, useCluster } from '../helpers/fixtures';
import { makePki, startGrpcTlsProxy, type GrpcTlsProxy } from '../helpers/grpc-tls-proxy';
import { startS3Server, type S3TestServer } from '../helpers/s3-server';
import { temporalHistory } from '../helpers/temporal-history';

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : [p];
  });
}

describe('secrets stay secret (S3 credentials, Temporal API key, codec and checkpoint keys; real servers)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let cluster: TestCluster;
  let s3: S3TestServer;
  let proxy: GrpcTlsProxy;
  const apiKey = `tk_${randomBytes(24).toString('hex')}`;
  const codecKey = randomBytes(32);
  const checkpointKey = randomBytes(32);
  let env: NodeJS.ProcessEnv;
  let secrets: Record<string, string>;

  before(async function () {
    cluster = fx.cluster;
    s3 = await startS3Server();
    const pki = makePki(path.join(cluster.dir, 'pki'));
    proxy = await startGrpcTlsProxy(cluster.dir, pki, cluster.server.address, { clientCert: false, apiKey });
    env = {
      TEMPORAL_ADDRESS: proxy.address,
      TEMPORAL_API_KEY: apiKey,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
      DURABLE_TRAIN_CODEC_KEYS: `k1=${codecKey.toString('base64')}`,
      DURABLE_TRAIN_CHECKPOINT_KEY: `c1=${checkpointKey.toString('base64')}`,
      DURABLE_TRAIN_S3_ENDPOINT: s3.endpoint,
      AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKey,
      AWS_SECRET_ACCESS_KEY: s3.secretKey,
      DURABLE_TRAIN_UI_URL: '',
    };
    secrets = {
      'S3 secret key': s3.secretKey,
      'API key': apiKey,
      'codec key (base64)': codecKey.toString('base64'),
      'codec key (hex)': codecKey.toString('hex'),
      'checkpoint signing key (base64)': checkpointKey.toString('base64'),
      'checkpoint signing key (hex)': checkpointKey.toString('hex'),
    };
  });
  after(async function () {
    await proxy?.stop();
    await s3?.stop();
  });

  it('appear in no log, history, checkpoint, report, export or error message after a run that used them all', async function () {
    const worker = await fx.worker({ env: { ...env, DURABLE_TRAIN_LOG_LEVEL: 'DEBUG' } });
    const storage = `s3://${s3.bucket}/secrets`;
    const spec = smallSpec({
      dataset: { name: 'mnist', trainLimit: 100, testLimit: 50, validationFraction: 0 },
      epochs: 1,
      chunkSteps: 1,
      checkpoint: { storage },
    });
    const file = writeSpec(cluster.dir, 'secrets.json', spec);
    const outputs: Array<[string, CliResult]> = [];
    const run = (what: string, args: string[], extra: NodeJS.ProcessEnv = {}) => {
      const r = cli(cluster, args, { env: { ...env, DURABLE_TRAIN_DEBUG: '1', ...extra } });
      outputs.push([what, r]);
      return r;
    };

    const started = run('start', ['start', '--spec', file, '--run-id', 'secrets-1', '--wait', '--json']);
    assert.equal(started.code, 0, started.stderr + worker.output());
    assert.equal(started.json<{ result: RunResult }>().result.status, 'completed');
    assert.equal(run('status', ['status', 'secrets-1', '--json']).code, 0);
    assert.equal(run('checkpoints', ['checkpoints', 'list', 'secrets-1', '--verify', '--json']).code, 0);
    assert.equal(run('runs list', ['runs', 'list', '--json']).code, 0);
    const html = path.join(cluster.dir, 'secrets-1.html');
    const report = run('report', ['report', 'secrets-1', '--out', html]);
    assert.equal(report.code, 0, report.stderr);
    const exported = path.join(cluster.dir, 'export');
    const exp = run('export', ['export', 'secrets-1', '--out', exported]);
    assert.equal(exp.code, 0, exp.stderr);

    // Commands that fail because a secret is wrong say so without echoing either value.
    const badApi = run('wrong API key', ['status', 'secrets-1'], { TEMPORAL_API_KEY: 'tk_wrong_key_123456' });
    assert.equal(badApi.code, 6, badApi.stderr);
    assert.match(badApi.stderr, /refused our credentials \(the API key from TEMPORAL_API_KEY/);
    assert.ok(!badApi.stderr.includes('tk_wrong_key_123456'));
    const wrongCodec = randomBytes(32).toString('base64');
    const badCodec = run('wrong codec key', ['status', 'secrets-1'], { DURABLE_TRAIN_CODEC_KEYS: `k1=${wrongCodec}` });
    assert.notEqual(badCodec.code, 0);
    assert.match(badCodec.stderr, /key id "k1"\) failed to decrypt/);
    assert.ok(!badCodec.stderr.includes(wrongCodec));
    const badS3 = run('wrong S3 secret', ['checkpoints', 'list', 'secrets-1', '--json'], {
      AWS_SECRET_ACCESS_KEY: 'wrong-s3-secret-987',
    });
    assert.notEqual(badS3.code, 0, badS3.stdout);
    assert.ok(!`${badS3.stdout}${badS3.stderr}`.includes('wrong-s3-secret-987'));

    // Everywhere they could be.
    const places: Array<[string, Buffer]> = [
      ['worker output (DEBUG)', Buffer.from(worker.output())],
      ...outputs.map(([what, r]): [string, Buffer] => [`CLI ${what} output`, Buffer.from(r.stdout + r.stderr)]),
      ['history (temporal workflow show --output json)', Buffer.from(temporalHistory(cluster, 'secrets-1'))],
      ['dev server log', fs.readFileSync(path.join(cluster.dir, 'server.log'))],
      ['report HTML', fs.readFileSync(html)],
      ...filesUnder(exported).map((f): [string, Buffer] => [`export ${path.basename(f)}`, fs.readFileSync(f)]),
    ];
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
    });
    try {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'secrets/' }));
      const keys = (listed.Contents ?? []).map((o) => o.Key!);
      assert.ok(keys.some((k) => k.includes('manifests/')) && keys.some((k) => k.includes('blobs/')), keys.join());
      for (const key of keys) {
        const obj = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
        places.push([`bucket object ${key}`, Buffer.from(await obj.Body!.transformToByteArray())]);
      }
    } finally {
      client.destroy();
    }
    assert.ok(places.length > 10, `${places.length} places searched`);
    // The signing key was in use: the manifests carry its id (the key itself must be nowhere).
    assert.ok(
      places.some(([where, bytes]) => /manifests/.test(where) && /"keyId":\s*"c1"/.test(bytes.toString())),
      'manifests signed with key c1',
    );
    const leaks = places.flatMap(([where, bytes]) =>
      Object.entries(secrets)
        .filter(([, value]) => bytes.includes(value))
        .map(([name]) => `${name} in ${where}`),
    );
    assert.deepEqual(leaks, []);
  });
});
