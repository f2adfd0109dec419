// Datasets read from S3 (a real SeaweedFS server): the same data and fingerprint as the same bytes from a local
// file, the size limit checked from HEAD before the download, a missing object named, an edit seen.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { clearDataCache, loadData, validateDataFile, type FileDataSpec } from '../../training/data';
import { loadTfjsModel } from '../../training/tfjs-model';
import { startS3Server, type S3TestServer } from '../helpers/s3-server';

const ENV = ['DURABLE_TRAIN_S3_ENDPOINT', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] as const;

function csv(n: number, offset = 0): string {
  const lines = ['x1,x2,label'];
  for (let i = 0; i < n; i++) lines.push(`${i + offset},${(i * 7) % 11},${['red', 'green', 'blue'][i % 3]}`);
  return lines.join('\n') + '\n';
}

describe('training/data: datasets in S3 (SeaweedFS)', function () {
  let server: S3TestServer | undefined;
  let client: S3Client;
  let dir: string;
  const saved: Partial<Record<(typeof ENV)[number], string>> = {};
  const put = (key: string, body: string | Uint8Array) =>
    client.send(new PutObjectCommand({ Bucket: server!.bucket, Key: key, Body: body }));

  before(async function () {
    this.timeout(90_000);
    server = await startS3Server();
    client = new S3Client({
      endpoint: server.endpoint,
      region: server.region,
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
    });
    for (const k of ENV) saved[k] = process.env[k];
    process.env.DURABLE_TRAIN_S3_ENDPOINT = server.endpoint;
    process.env.AWS_REGION = server.region;
    process.env.AWS_ACCESS_KEY_ID = server.accessKey;
    process.env.AWS_SECRET_ACCESS_KEY = server.secretKey;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-data-s3-'));
  });
  after(async () => {
    for (const k of ENV) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    client?.destroy();
    await server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => clearDataCache());

  it('reads a CSV object: the same data and fingerprint as the same bytes in a local file', async () => {
    const text = csv(40);
    await put('data/colors.csv', text);
    fs.writeFileSync(path.join(dir, 'colors.csv'), text);
    const spec: FileDataSpec = { format: 'csv', path: `s3://${server!.bucket}/data/colors.csv`, label: 'label' };
    await validateDataFile(spec, { baseDir: dir });
    const remote = await loadData(spec, { seed: 4, baseDir: dir });
    const local = await loadData({ ...spec, path: 'file://colors.csv' }, { seed: 4, baseDir: dir });
    assert.equal(remote.name, spec.path);
    assert.deepEqual(remote.classes, ['blue', 'green', 'red']);
    assert.equal(remote.train.n, 32);
    assert.deepEqual(remote.train.x, local.train.x);
    assert.deepEqual(remote.test.y, local.test.y);
    assert.equal(remote.fingerprint, local.fingerprint);
    assert.equal(remote.bytesRead, Buffer.byteLength(text));
    assert.equal(await loadData(spec, { seed: 4, baseDir: dir }), remote, 'cached while the object is unchanged');
    // An overwritten object (new ETag) is read again.
    await put('data/colors.csv', csv(40, 1));
    const edited = await loadData(spec, { seed: 4, baseDir: dir });
    assert.notEqual(edited.fingerprint, remote.fingerprint);
  });

  it('IDX features and labels both in S3', async () => {
    const n = 10;
    const x = new Uint8Array(4 + 8 + n * 2);
    x.set([0, 0, 0x08, 2, 0, 0, 0, n, 0, 0, 0, 2]);
    for (let i = 0; i < n * 2; i++) x[12 + i] = i;
    const y = new Uint8Array(8 + n);
    y.set([0, 0, 0x08, 1, 0, 0, 0, n]);
    for (let i = 0; i < n; i++) y[8 + i] = i % 2;
    await put('idx/x', x);
    await put('idx/y', y);
    const spec: FileDataSpec = {
      format: 'idx',
      path: `s3://${server!.bucket}/idx/x`,
      label: `s3://${server!.bucket}/idx/y`,
    };
    await validateDataFile(spec, { baseDir: dir });
    const data = await loadData(spec, { seed: 1, baseDir: dir });
    assert.deepEqual(data.featureShape, [2]);
    assert.deepEqual(data.classes, ['0', '1']);
    assert.equal(data.train.n + data.test.n, n);
    assert.equal(data.bytesRead, x.length + y.length);
  });

  it('a missing object, a missing bucket and an oversized object are refused naming the field', async () => {
    const b = server!.bucket;
    const missing: FileDataSpec = { format: 'csv', path: `s3://${b}/nope.csv`, label: 'label' };
    await assert.rejects(
      validateDataFile(missing, { baseDir: dir }),
      new RegExp(`^DatasetError: dataset\\.path: s3://${b}/nope\\.csv does not exist`),
    );
    await assert.rejects(loadData(missing, { seed: 1, baseDir: dir }), /dataset\.path: .* does not exist/);
    await assert.rejects(
      validateDataFile({ ...missing, path: 's3://no-such-bucket-here/x.csv' }, { baseDir: dir }),
      /^DatasetError: dataset\.path: s3:\/\/no-such-bucket-here\/x\.csv does not exist/,
    );
    const text = csv(200);
    await put('big.csv', text);
    const big: FileDataSpec = { format: 'csv', path: `s3://${b}/big.csv`, label: 'label' };
    const limit = /larger than the dataset limit of 1000 bytes; raise the limit with DURABLE_TRAIN_MAX_DATASET_BYTES/;
    await assert.rejects(validateDataFile(big, { baseDir: dir, maxBytes: 1000 }), limit);
    await assert.rejects(loadData(big, { seed: 1, baseDir: dir, maxBytes: 1000 }), limit);
    await put('empty.csv', new Uint8Array(0));
    await assert.rejects(
      validateDataFile({ ...big, path: `s3://${b}/empty.csv` }, { baseDir: dir }),
      new RegExp(`dataset\\.path: s3://${b}/empty\\.csv is empty`),
    );
    await assert.rejects(loadData({ ...big, path: `s3://${b}/empty.csv` }, { seed: 1, baseDir: dir }), /is empty/);
  });
  it('a model.json in S3 with its weight file beside it loads as from a local directory; a missing weight file is named', async () => {
    const fixture = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'keras', 'mlp-bn-l2');
    for (const f of fs.readdirSync(fixture)) await put(`models/mlp/${f}`, fs.readFileSync(path.join(fixture, f)));
    const url = `s3://${server!.bucket}/models/mlp/model.json`;
    const remote = await loadTfjsModel(url, dir);
    const local = await loadTfjsModel(`file://${path.join(fixture, 'model.json')}`, dir);
    try {
      assert.equal(remote.pretrained, true);
      assert.deepEqual(remote.topology, local.topology);
      const a = remote.model.getWeights();
      const b = local.model.getWeights();
      assert.equal(a.length, b.length);
      a.forEach((w, i) => assert.deepEqual(Array.from(w.dataSync()), Array.from(b[i].dataSync()), `weight ${i}`));
    } finally {
      remote.model.dispose();
      local.model.dispose();
    }
    // model.json alone (its weight file not uploaded): refused naming the missing object.
    await put('models/lonely/model.json', fs.readFileSync(path.join(fixture, 'model.json')));
    await assert.rejects(
      loadTfjsModel(`s3://${server!.bucket}/models/lonely/model.json`, dir),
      /model\.tfjs: s3:\/\/\S+\/models\/lonely\/model\.json: weight file group1-shard1of1\.bin is missing \(s3:\/\/\S+\/models\/lonely\/group1-shard1of1\.bin\)/,
    );
    await assert.rejects(
      loadTfjsModel(`s3://${server!.bucket}/models/none/model.json`, dir),
      /model\.tfjs: \S+: model\.json is missing/,
    );
  });
});
