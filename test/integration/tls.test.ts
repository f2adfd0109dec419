// mTLS for real: the dev server speaks plain gRPC, so nginx (TLS, `ssl_verify_client on`, http2, grpc_pass) sits in
// front of it with certificates made by openssl here. The worker and the CLI get only the proxy's address and a
// client certificate; clients without one, or with one from another CA, are refused with a clear message.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunResult } from '../../workflows/progress';
import { cli, spawnWorker, writeSpec, type TestCluster, type WorkerProcess } from '../helpers/cluster';
import { smallSpec, useCluster } from '../helpers/fixtures';
import { makePki, startGrpcTlsProxy, type GrpcTlsProxy, type TestPki } from '../helpers/grpc-tls-proxy';

describe('mTLS through a real TLS-terminating gRPC proxy (nginx, ssl_verify_client on)', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let cluster: TestCluster;
  let pki: TestPki;
  let proxy: GrpcTlsProxy;
  let worker: WorkerProcess | undefined;
  /** What a user behind the proxy sets: the proxy's address and no other port, TLS files, the server name. */
  let tlsEnv: NodeJS.ProcessEnv;

  before(async function () {
    cluster = fx.cluster;
    pki = makePki(path.join(cluster.dir, 'pki'));
    proxy = await startGrpcTlsProxy(cluster.dir, pki, cluster.server.address);
    tlsEnv = {
      TEMPORAL_ADDRESS: proxy.address,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
      DURABLE_TRAIN_UI_URL: '',
    };
  });
  after(async function () {
    await worker?.kill('SIGKILL');
    await proxy?.stop();
  });

  it('runs a spec with the worker and the CLI connected only through the proxy, with a client certificate', async function () {
    worker = spawnWorker(cluster, { env: tlsEnv });
    await worker.ready;
    // The worker names the address it connected to once connected (its training process may log first).
    const connected = new RegExp(`on ${proxy.address.replace(/\./g, '\\.')}`);
    for (let i = 0; i < 300 && !connected.test(worker.output()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(worker.output(), connected);
    const spec = smallSpec({
      dataset: { name: 'mnist', trainLimit: 100, testLimit: 50, validationFraction: 0 },
      epochs: 1,
      chunkSteps: 1,
    });
    const file = writeSpec(cluster.dir, 'tls.json', spec);
    const r = cli(cluster, ['start', '--spec', file, '--run-id', 'tls-1', '--wait', '--json'], { env: tlsEnv });
    assert.equal(r.code, 0, r.stderr + worker.output() + proxy.log());
    const { result } = r.json<{ result: RunResult }>();
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 2);
    // The proxy carried the traffic (its access log names the gRPC calls of the worker and the CLI).
    const access = fs.readFileSync(path.join(cluster.dir, 'nginx-access.log'), 'utf8');
    assert.match(access, /PollWorkflowTaskQueue/);
    assert.match(access, /StartWorkflowExecution/);

    // A TOML profile (the Temporal config file) instead of variables gives the same access.
    const toml = path.join(cluster.dir, 'temporal.toml');
    fs.writeFileSync(
      toml,
      [
        '[profile.proxied]',
        `address = "${proxy.address}"`,
        'namespace = "default"',
        '[profile.proxied.tls]',
        `server_ca_cert_path = "${pki.caCert}"`,
        'server_name = "localhost"',
        `client_cert_path = "${pki.clientCert}"`,
        `client_key_path = "${pki.clientKey}"`,
        '',
      ].join('\n'),
    );
    const status = cli(cluster, ['status', 'tls-1', '--json'], {
      env: { TEMPORAL_ADDRESS: undefined, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'proxied' },
    });
    assert.equal(status.code, 0, status.stderr);
    assert.equal(status.json<{ status: string }>().status, 'completed');
  });

  it('refuses a client without a certificate, or with one from another CA, saying so', function () {
    const noCert = cli(cluster, ['status', 'tls-1'], {
      env: { ...tlsEnv, TEMPORAL_TLS_CLIENT_CERT_PATH: undefined, TEMPORAL_TLS_CLIENT_KEY_PATH: undefined },
    });
    assert.equal(noCert.code, 6, noCert.stderr);
    assert.match(noCert.stderr, /requires a TLS client certificate \(mTLS\) and none was given/);
    assert.match(noCert.stderr, /TEMPORAL_TLS_CLIENT_CERT_PATH/);

    const rogue = cli(cluster, ['status', 'tls-1'], {
      env: { ...tlsEnv, TEMPORAL_TLS_CLIENT_CERT_PATH: pki.rogueCert, TEMPORAL_TLS_CLIENT_KEY_PATH: pki.rogueKey },
    });
    assert.equal(rogue.code, 6, rogue.stderr);
    assert.match(rogue.stderr, /refused our TLS client certificate/);

    // Without the private CA, the proxy's certificate is not trusted; without TLS, the proxy is not plain gRPC.
    const noCa = cli(cluster, ['status', 'tls-1'], { env: { ...tlsEnv, TEMPORAL_TLS_SERVER_CA_CERT_PATH: undefined } });
    assert.equal(noCa.code, 6, noCa.stderr);
    assert.match(
      noCa.stderr,
      /server's TLS certificate is not trusted; give the CA .* TEMPORAL_TLS_SERVER_CA_CERT_PATH/,
    );
    const plain = cli(cluster, ['status', 'tls-1'], { env: { TEMPORAL_ADDRESS: proxy.address } });
    assert.equal(plain.code, 6, plain.stderr);
    assert.match(plain.stderr, /speaks TLS and we do not/);
    for (const r of [noCert, rogue, noCa, plain]) assert.doesNotMatch(r.stderr, /\b14 UNAVAILABLE|code: '/);
  });

  it('refuses a worker without a certificate, with one clear line', async function () {
    const w = spawnWorker(cluster, {
      env: { ...tlsEnv, TEMPORAL_TLS_CLIENT_CERT_PATH: undefined, TEMPORAL_TLS_CLIENT_KEY_PATH: undefined },
    });
    const code = await w.exited;
    assert.equal(code, 6, w.output());
    assert.match(w.output(), /durable-train: Temporal at .* requires a TLS client certificate \(mTLS\)/);
  });

  it('names an unreadable key file, a wrong namespace and a certificate without its key', function () {
    const missing = path.join(cluster.dir, 'nope.key');
    const badKey = cli(cluster, ['status', 'tls-1'], { env: { ...tlsEnv, TEMPORAL_TLS_CLIENT_KEY_PATH: missing } });
    assert.equal(badKey.code, 2, badKey.stderr);
    assert.match(
      badKey.stderr,
      new RegExp(`cannot read the TLS client key file ${missing} \\(TEMPORAL_TLS_CLIENT_KEY_PATH\\): no such file`),
    );
    const notPem = cli(cluster, ['status', 'tls-1'], {
      env: { ...tlsEnv, TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientCert },
    });
    assert.equal(notPem.code, 2, notPem.stderr);
    assert.match(notPem.stderr, /TLS client key file .* is not a PEM PRIVATE KEY/);
    const half = cli(cluster, ['status', 'tls-1'], { env: { ...tlsEnv, TEMPORAL_TLS_CLIENT_KEY_PATH: undefined } });
    assert.equal(half.code, 2, half.stderr);
    assert.match(half.stderr, /client certificate is given without its key/);
    const ns = cli(cluster, ['status', 'tls-1'], { env: { ...tlsEnv, TEMPORAL_NAMESPACE: 'no-such-namespace' } });
    assert.equal(ns.code, 3, ns.stderr);
    assert.match(ns.stderr, /namespace "no-such-namespace" does not exist on Temporal at/);
  });
});
