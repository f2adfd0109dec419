// Interleaved in one process: CheckpointManager.commit + applyRetention of the before build vs the after build.
const fs = require('fs'), os = require('os'), path = require('path');
const sides = { before: require('/work/wt/before/dist/checkpoint'), after: require('/work/main/dist/checkpoint') };
const blobs = (step) => Array.from({ length: 24 }, (_, i) => {
  const data = new Uint8Array(44_000); data.fill((step * 31 + i) % 251); data[0] = i;
  return { name: `w${i}`, dtype: 'float32', shape: [11_000], data };
});
const input = (step) => ({ step, epoch: 0, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(), parent: null,
  blobs: blobs(step), state: { step }, metrics: { loss: 1 / (step + 1) }, fingerprints: { spec: 's', dataset: 'd', model: 'm' },
  backend: { name: 'cpu', version: '4.22.0' }, reason: 'chunk-end' });
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
(async () => {
  const res = { before: { commit: [], retention: [] }, after: { commit: [], retention: [] } };
  const roots = {}, mgrs = {};
  for (const k of Object.keys(sides)) { roots[k] = fs.mkdtempSync(path.join(os.tmpdir(), `ab-${k}-`)); mgrs[k] = new sides[k].CheckpointManager(new sides[k].FsCheckpointStore(roots[k]), 'ab'); }
  const N = Number(process.argv[2] || 60);
  for (let step = 1; step <= N; step++) {
    const order = step % 2 ? ['before', 'after'] : ['after', 'before'];
    for (const k of order) {
      const t0 = performance.now();
      await mgrs[k].commit(input(step), { handOver: true });
      const t1 = performance.now();
      await mgrs[k].applyRetention({ keepLatest: 5 });
      const t2 = performance.now();
      if (step > 5) { res[k].commit.push(t1 - t0); res[k].retention.push(t2 - t1); }
    }
  }
  const out = {};
  for (const k of Object.keys(res)) out[k] = { commitMs: +med(res[k].commit).toFixed(2), retentionMs: +med(res[k].retention).toFixed(2), n: res[k].commit.length };
  out.ratio = { commit: +(out.after.commitMs / out.before.commitMs).toFixed(3), retention: +(out.after.retentionMs / out.before.retentionMs).toFixed(3) };
  out.loadavg = os.loadavg()[0];
  console.log(JSON.stringify(out));
  for (const k of Object.keys(roots)) fs.rmSync(roots[k], { recursive: true, force: true });
})();
