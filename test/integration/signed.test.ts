// Signed checkpoints end to end (real dev server, real worker processes, the real CLI): with
// DURABLE_TRAIN_CHECKPOINT_KEY every manifest is signed; a manifest edited and re-hashed by someone without the key
// (every content hash consistent again) is refused by restore, fork and export, naming the checkpoint and saying it
// is a signature problem; with the right keys everything works, including a key rotation.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkpointId, manifestBodyHash, sha256Hex, type Manifest } from '../../checkpoint';
import type { RunResult } from '../../workflows/progress';
import { cli, writeSpec, type TestCluster } from '../helpers/cluster';
import { smallSpec, useCluster } from '../helpers/fixtures';

// 200 examples, batches of 50: 4 steps an epoch, chunks of 2; every checkpoint kept.
const spec = smallSpec({
  dataset: { name: 'mnist', trainLimit: 200, testLimit: 100, validationFraction: 0 },
  epochs: 1,
  chunkSteps: 2,
  checkpoint: { storage: 'file://.data/checkpoints', keepLatest: 20 },
});
const K1 = `k1=${randomBytes(32).toString('base64')}`;
const K2 = `k2=${randomBytes(32).toString('base64')}`;

describe('signed checkpoints: forged manifests are refused by restore, fork and export', function () {
  this.timeout(600_000);
  const fx = useCluster();
  let cluster: TestCluster;
  let specFile: string;
  let storage: string;
  let signedA: RunResult;

  const run = (args: string[], key: string | undefined) =>
    cli(cluster, [...args, '--json'], { env: { DURABLE_TRAIN_CHECKPOINT_KEY: key ?? '' } });
  const manifests = (runId: string) =>
    (fx.manifests(runId) as Manifest[]).sort((a, b) => a.step - b.step || a.id.localeCompare(b.id));
  const manifestFile = (runId: string, id: string) =>
    path.join(cluster.dir, '.data', 'checkpoints', runId, 'manifests', `${id}.json`);
  const refusal = (out: string, runId: string, id: string) => {
    assert.match(out, new RegExp(`checkpoint ${runId}:${id} (has a signature that does not match|is signed with key)`));
    assert.match(out, /signature check, not damage/);
  };

  before(async function () {
    cluster = fx.cluster;
    specFile = writeSpec(cluster.dir, 'signed.json', spec);
    storage = `file://${path.join(cluster.dir, '.data', 'checkpoints')}`;
    // signed-a, the run signed with k1 that the tests verify, export and fork from (none changes it): trained here by
    // a worker that is gone before the first test, so any one test passes alone.
    const w = await fx.worker({ env: { DURABLE_TRAIN_CHECKPOINT_KEY: K1 } });
    const r = run(['start', '--spec', specFile, '--run-id', 'signed-a', '--wait'], K1);
    assert.equal(r.code, 0, r.stderr + w.output());
    signedA = r.json<{ result: RunResult }>().result;
    await w.kill();
  });

  it('signs every checkpoint of a run; the CLI with the key verifies and exports them', async function () {
    await fx.worker({ env: { DURABLE_TRAIN_CHECKPOINT_KEY: K1 } });
    assert.equal(signedA.step, 4);
    const ms = manifests('signed-a');
    assert.equal(ms.length, 2);
    for (const m of ms) {
      assert.equal(m.signature?.keyId, 'k1');
      assert.match(m.signature!.hmacSha256, /^[0-9a-f]{64}$/);
    }
    const v = run(['checkpoints', 'verify', 'signed-a', '--storage', storage], K1);
    assert.equal(v.code, 0, v.stderr);
    const out = path.join(cluster.dir, 'export-a');
    const e = run(['export', 'signed-a', '--out', out], K1);
    assert.equal(e.code, 0, e.stderr);
    assert.ok(fs.existsSync(path.join(out, 'model.json')));
  });

  it('key rotation: new key first, old one still verifies; a CLI without the new key refuses', async function () {
    await fx.worker({ env: { DURABLE_TRAIN_CHECKPOINT_KEY: `${K2},${K1}` } });
    const override = writeSpec(cluster.dir, 'signed-b.override.json', { epochs: 2 });
    // The fork restores signed-a's newest checkpoint (signed with k1) and commits its own with k2.
    const f = run(
      ['fork', '--from', 'signed-a', '--spec-override', override, '--run-id', 'signed-b', '--wait'],
      `${K2},${K1}`,
    );
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.json<{ result: RunResult }>().result.step, 8);
    const ms = manifests('signed-b');
    assert.equal(ms.length, 2);
    assert.deepEqual(
      ms.map((m) => m.signature?.keyId),
      ['k2', 'k2'],
    );
    const ok = run(['checkpoints', 'verify', 'signed-b', '--storage', storage], `${K2},${K1}`);
    assert.equal(ok.code, 0, ok.stderr);
    const old = run(['checkpoints', 'verify', 'signed-b', ms[1].id, '--storage', storage], K1);
    assert.notEqual(old.code, 0);
    refusal(old.stderr, 'signed-b', ms[1].id);
    assert.match(old.stderr, /is signed with key "k2", which is not among this process's keys \(k1\)/);
  });

  it('checkpoints written before signing are refused until `checkpoints sign`, then resume', async function () {
    const unkeyed = await fx.worker();
    const file = writeSpec(cluster.dir, 'signed-u.json', spec);
    const r = run(['start', '--spec', file, '--run-id', 'signed-u', '--wait'], undefined);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(manifests('signed-u').every((m) => m.signature === undefined));
    const refused = run(['checkpoints', 'list', 'signed-u', '--storage', storage], K1);
    assert.equal(refused.code, 1, refused.stderr); // a row that is not valid fails the check
    const rows = refused.json<Array<{ id: string; valid: boolean; untrusted?: boolean; problem?: string }>>();
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.equal(row.untrusted, true);
      assert.match(
        row.problem!,
        new RegExp(
          `checkpoint signed-u:${row.id} is not signed: refused .*Turning signing on for existing checkpoints`,
        ),
      );
    }
    const signed = run(['checkpoints', 'sign', 'signed-u', '--storage', storage], K1);
    assert.equal(signed.code, 0, signed.stderr);
    assert.deepEqual(
      signed.json<{ results: Array<{ outcome: string }> }>().results.map((x) => x.outcome),
      ['signed', 'signed'],
    );
    assert.ok(manifests('signed-u').every((m) => m.signature?.keyId === 'k1'));
    // A worker with the key (the only one) now resumes the run from its signed newest checkpoint.
    await unkeyed.kill();
    await fx.worker({ env: { DURABLE_TRAIN_CHECKPOINT_KEY: K1 } });
    const again = run(['start', '--spec', file, '--run-id', 'signed-u', '--wait'], K1);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.json<{ result: RunResult }>().result.step, 4);
  });

  it('a manifest edited and re-hashed without the key is refused on restore, fork and export', async function () {
    const worker = await fx.worker({ env: { DURABLE_TRAIN_CHECKPOINT_KEY: `${K2},${K1}` } });
    const keys = `${K2},${K1}`;
    const override = writeSpec(cluster.dir, 'signed-c.override.json', { epochs: 2 });
    // A run of its own to forge (signed-a stays genuine for the other tests).
    const made = run(['start', '--spec', specFile, '--run-id', 'signed-f', '--wait'], keys);
    assert.equal(made.code, 0, made.stderr + worker.output());
    const [older, newest] = manifests('signed-f');
    // The forger: its own weights under a consistent blob hash, better-looking metrics, the id recomputed from the
    // content, the original replaced. Only the signature (kept as it was) cannot be made to match.
    const evil = new Uint8Array(newest.blobs[0].size).fill(0x3f);
    fs.writeFileSync(path.join(cluster.dir, '.data', 'checkpoints', 'signed-f', 'blobs', sha256Hex(evil)), evil);
    const forged: Manifest = JSON.parse(JSON.stringify(newest)) as Manifest;
    forged.blobs[0].sha256 = sha256Hex(evil);
    forged.metrics.loss = 0.001;
    forged.id = checkpointId(forged.step, manifestBodyHash(forged));
    fs.unlinkSync(manifestFile('signed-f', newest.id));
    fs.writeFileSync(manifestFile('signed-f', forged.id), JSON.stringify(forged, null, 1) + '\n');
    // Without the key its hashes all agree: content hashes alone do not catch it.
    const unkeyed = run(['checkpoints', 'verify', 'signed-f', forged.id, '--storage', storage], undefined);
    assert.equal(unkeyed.code, 0, unkeyed.stderr);

    // export: the newest (refused outright, not skipped for the older one) and by id.
    for (const ref of ['signed-f', `signed-f:${forged.id}`]) {
      const e = run(['export', ref, '--out', path.join(cluster.dir, `export-${ref.length}`)], keys);
      assert.notEqual(e.code, 0, `export ${ref}: ${e.stdout}`);
      refusal(e.stderr, 'signed-f', forged.id);
    }
    // fork, refused by the CLI: from the newest and by id.
    for (const from of ['signed-f', `signed-f:${forged.id}`]) {
      const f = run(['fork', '--from', from, '--spec-override', override, '--run-id', 'signed-c'], keys);
      assert.notEqual(f.code, 0, `fork ${from}: ${f.stdout}`);
      refusal(f.stderr, 'signed-f', forged.id);
    }
    // fork, refused by the worker even when the client holds no key (the worker checks what it loads).
    const f = run(
      ['fork', '--from', `signed-f:${forged.id}`, '--spec-override', override, '--run-id', 'signed-d', '--wait'],
      undefined,
    );
    assert.equal(f.code, 5, f.stderr + worker.output());
    refusal(f.stderr, 'signed-f', forged.id);
    assert.equal(fs.existsSync(path.join(cluster.dir, '.data', 'checkpoints', 'signed-d', 'manifests')), false);
    // restore: starting the run again resumes from its newest checkpoint, which is refused.
    const s = run(['start', '--spec', specFile, '--run-id', 'signed-f', '--wait'], undefined);
    assert.equal(s.code, 5, s.stderr + worker.output());
    refusal(s.stderr, 'signed-f', forged.id);
    assert.deepEqual(
      manifests('signed-f').map((m) => m.id),
      [older.id, forged.id],
    );

    // With the right key, the genuine older checkpoint still exports.
    const e = run(['export', `signed-f:${older.id}`, '--out', path.join(cluster.dir, 'export-older')], keys);
    assert.equal(e.code, 0, e.stderr);
  });
});
