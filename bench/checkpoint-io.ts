// Checkpoint I/O: save and restore throughput of CheckpointManager on a local fs store for 1, 10, 100 and 400 MiB
// of float32 blobs laid out like an Adam checkpoint (each weight plus its two optimizer slots), against plain fs
// writing + fsyncing (and reading) the same bytes in the same run, interleaved, median over repetitions.
//
//   npm run build && node dist/bench/checkpoint-io.js [--quick] [--sizes 1,10,100,400] [--reps 5]
//
// Goal: manager / plain >= 0.8 for checkpoints of 10 MiB and more (save and restore).
// The breakdown times the pieces of a commit separately (input copy, sha256, store writes) to explain a gap.
// `manager` is commit as trainChunk calls it (the snapshot's buffers handed over); `manager-copy` is the default
// API, which copies every byte before its first await.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CheckpointManager, FsCheckpointStore, sha256Hex, type BlobInput, type CommitInput } from '../checkpoint';
import {
  QUICK,
  adamBlobs,
  arg,
  emit,
  gc,
  interleavedOrder,
  log,
  machine,
  median,
  now,
  numArg,
  rmrf,
  round,
  summarize,
  table,
  tmpDir,
} from './common';

const MiB = 2 ** 20;

function commitInput(blobs: BlobInput[]): CommitInput {
  return {
    step: 1,
    epoch: 0,
    createdAt: new Date().toISOString(),
    parent: null,
    blobs,
    state: { step: 1, note: 'bench' },
    metrics: { loss: 1 },
    fingerprints: { model: 'bench' },
    backend: { name: 'bench', version: '0' },
  };
}

const fileName = (name: string) => name.replace(/\//g, '_');

const EVICT_PY =
  'import os,sys\n' +
  'for root in sys.argv[1:]:\n' +
  '  for d,_,fs in os.walk(root):\n' +
  '    for f in fs:\n' +
  '      fd=os.open(os.path.join(d,f),os.O_RDONLY)\n' +
  '      os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)\n' +
  '      os.close(fd)\n';

/**
 * Drops these files' pages from the page cache (posix_fadvise DONTNEED on each: they are fsynced, so clean), so a
 * restore reads from the disk as after a reboot or on another host. Node has no fadvise; python3 does. Returns
 * false when that is not possible here.
 */
function evict(...dirs: string[]): boolean {
  const r = spawnSync('python3', ['-c', EVICT_PY, ...dirs], { encoding: 'utf8' });
  return r.status === 0;
}

/** Plain fs: one file per blob, write + fsync each, then fsync the directory. */
async function plainSave(dir: string, blobs: BlobInput[]): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  for (const b of blobs) {
    const fh = await fsp.open(path.join(dir, fileName(b.name)), 'w');
    try {
      await fh.writeFile(b.data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  const d = await fsp.open(dir, 'r');
  await d.sync();
  await d.close();
}

/** Plain fs, the floor: all bytes into one file, one fsync. */
async function plainSaveOneFile(dir: string, blobs: BlobInput[]): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const fh = await fsp.open(path.join(dir, 'all.bin'), 'w');
  try {
    for (const b of blobs) await fh.write(b.data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function plainLoad(dir: string, blobs: BlobInput[]): Promise<number> {
  let n = 0;
  for (const b of blobs) n += (await fsp.readFile(path.join(dir, fileName(b.name)))).byteLength;
  return n;
}

interface Rep {
  managerSaveMs: number;
  plainSaveMs: number;
  plainOneFileSaveMs: number;
  managerLoadMs: number;
  plainLoadMs: number;
  /** CheckpointManager.commit without handOver: the default API, which copies every byte first. */
  managerCopySaveMs: number;
  /** Restores after the files were dropped from the page cache (NaN when that is not possible). */
  managerColdLoadMs: number;
  plainColdLoadMs: number;
  /** Pieces of a commit, timed alone. */
  copyMs: number;
  sha256Ms: number;
  storeWritesMs: number;
}

async function oneRep(blobs: BlobInput[], rep: number): Promise<Rep> {
  const r: Partial<Rep> = {};
  const root = tmpDir('dt-bench-io-');
  try {
    const mgrDir = path.join(root, 'mgr');
    const plainDir = path.join(root, 'plain');
    let id = '';
    const steps: Array<[string, () => Promise<void>]> = [
      [
        'manager',
        async () => {
          const manager = new CheckpointManager(new FsCheckpointStore(mgrDir), 'bench');
          gc();
          let t = now();
          // As trainChunk calls it: the snapshot's fresh buffers are handed over, not copied again.
          const m = await manager.commit(commitInput(blobs), { handOver: true });
          r.managerSaveMs = now() - t;
          id = m.id;
          gc();
          t = now();
          const loaded = await manager.load(id);
          r.managerLoadMs = now() - t;
          if (loaded.blobs.size !== blobs.length) throw new Error('load returned the wrong blob count');
          r.managerColdLoadMs = NaN;
          if (evict(mgrDir)) {
            gc();
            t = now();
            await manager.load(id);
            r.managerColdLoadMs = now() - t;
          }
        },
      ],
      [
        'plain',
        async () => {
          gc();
          let t = now();
          await plainSave(plainDir, blobs);
          r.plainSaveMs = now() - t;
          gc();
          t = now();
          await plainLoad(plainDir, blobs);
          r.plainLoadMs = now() - t;
          r.plainColdLoadMs = NaN;
          if (evict(plainDir)) {
            gc();
            t = now();
            await plainLoad(plainDir, blobs);
            r.plainColdLoadMs = now() - t;
          }
        },
      ],
      [
        'manager-copy',
        async () => {
          const manager = new CheckpointManager(new FsCheckpointStore(path.join(root, 'copy')), 'bench');
          gc();
          const t = now();
          await manager.commit(commitInput(blobs));
          r.managerCopySaveMs = now() - t;
        },
      ],
      [
        'plain-one-file',
        async () => {
          gc();
          const t = now();
          await plainSaveOneFile(path.join(root, 'one'), blobs);
          r.plainOneFileSaveMs = now() - t;
        },
      ],
      [
        'pieces',
        async () => {
          gc();
          let t = now();
          const copies = blobs.map((b) => {
            const c = new Uint8Array(b.data.byteLength);
            c.set(b.data);
            return c;
          });
          r.copyMs = now() - t;
          t = now();
          const hashes = copies.map((c) => sha256Hex(c));
          r.sha256Ms = now() - t;
          // The store's part alone: the manager's blob writes (8 in parallel) plus one manifest-sized commit point.
          const store = new FsCheckpointStore(path.join(root, 'store'));
          gc();
          t = now();
          const queue = hashes.map((h, i) => [h, copies[i]] as const);
          await Promise.all(
            Array.from({ length: 8 }, async () => {
              for (let job = queue.shift(); job; job = queue.shift())
                await store.writeBlob(`s/blobs/${job[0]}`, job[1]);
            }),
          );
          await store.writeAtomic('s/manifests/x.json', new TextEncoder().encode('{}'));
          r.storeWritesMs = now() - t;
        },
      ],
    ];
    for (const [, fn] of interleavedOrder(steps, rep)) await fn();
  } finally {
    rmrf(root);
  }
  return r as Rep;
}

async function main(): Promise<void> {
  const sizes = (arg('--sizes') ?? (QUICK ? '1,4' : '1,10,100,400')).split(',').map(Number);
  const reps = numArg('--reps', QUICK ? 2 : 7);
  const m0 = machine('n/a (no tfjs)');
  const rows: Array<Record<string, unknown>> = [];
  const results: Array<Record<string, unknown>> = [];
  for (const mib of sizes) {
    const bytes = mib * MiB;
    const blobs = adamBlobs(bytes);
    const total = blobs.reduce((a, b) => a + b.data.byteLength, 0);
    const n = mib >= 400 ? Math.min(reps, 5) : reps;
    // One unmeasured round first (page cache, JIT, directory creation).
    await oneRep(blobs, 0);
    const runs: Rep[] = [];
    for (let rep = 0; rep < n; rep++) {
      runs.push(await oneRep(blobs, rep));
      log(
        `checkpoint-io: ${mib} MiB rep ${rep}: ${JSON.stringify(runs[runs.length - 1], (_k, v) => (typeof v === 'number' ? round(v, 1) : v))}`,
      );
    }
    const mbps = (ms: number) => total / MiB / (ms / 1000);
    const col = (k: keyof Rep) => runs.map((r) => r[k]);
    const ratios = (num: keyof Rep, den: keyof Rep) =>
      summarize(
        runs.map((r) => r[den] / r[num]),
        3,
      );
    const saveRatio = ratios('managerSaveMs', 'plainSaveMs');
    const loadRatio = ratios('managerLoadMs', 'plainLoadMs');
    const saveVsOneFile = ratios('managerSaveMs', 'plainOneFileSaveMs');
    const copySave = ratios('managerCopySaveMs', 'plainSaveMs');
    const coldLoad = ratios('managerColdLoadMs', 'plainColdLoadMs');
    const res = {
      mib,
      bytes: total,
      blobs: blobs.length,
      reps: n,
      mbPerSec: {
        managerSave: round(mbps(median(col('managerSaveMs'))), 1),
        plainSave: round(mbps(median(col('plainSaveMs'))), 1),
        plainOneFileSave: round(mbps(median(col('plainOneFileSaveMs'))), 1),
        managerLoad: round(mbps(median(col('managerLoadMs'))), 1),
        plainLoad: round(mbps(median(col('plainLoadMs'))), 1),
        managerCopySave: round(mbps(median(col('managerCopySaveMs'))), 1),
        managerColdLoad: round(mbps(median(col('managerColdLoadMs'))), 1),
        plainColdLoad: round(mbps(median(col('plainColdLoadMs'))), 1),
      },
      ratio: {
        save: saveRatio,
        restore: loadRatio,
        saveVsOneFile,
        saveWithCopy: copySave,
        restoreColdCache: coldLoad,
      },
      breakdownMs: {
        managerSave: round(median(col('managerSaveMs')), 1),
        copy: round(median(col('copyMs')), 1),
        sha256: round(median(col('sha256Ms')), 1),
        storeWrites: round(median(col('storeWritesMs')), 1),
        plainSave: round(median(col('plainSaveMs')), 1),
        managerLoad: round(median(col('managerLoadMs')), 1),
        plainLoad: round(median(col('plainLoadMs')), 1),
        managerCopySave: round(median(col('managerCopySaveMs')), 1),
      },
      goal:
        mib >= 10
          ? {
              target: '>= 0.8',
              save: saveRatio.median >= 0.8,
              restoreWarmCache: loadRatio.median >= 0.8,
              restoreColdCache: coldLoad.median >= 0.8,
            }
          : null,
      runs: runs.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v, 1)]))),
    };
    results.push(res);
    rows.push({
      MiB: mib,
      'save MB/s': res.mbPerSec.managerSave,
      'plain MB/s': res.mbPerSec.plainSave,
      'save ratio': saveRatio.median,
      'restore MB/s': res.mbPerSec.managerLoad,
      'plain read MB/s': res.mbPerSec.plainLoad,
      'restore ratio': loadRatio.median,
      'cold restore ratio': coldLoad.median,
      'save ratio (copy)': copySave.median,
      'copy ms': res.breakdownMs.copy,
      'sha256 ms': res.breakdownMs.sha256,
      'store ms': res.breakdownMs.storeWrites,
      'goal save/warm/cold': res.goal
        ? [res.goal.save, res.goal.restoreWarmCache, res.goal.restoreColdCache]
            .map((p) => (p ? 'pass' : 'miss'))
            .join('/')
        : '-',
    });
  }
  table('checkpoint I/O (median; ratio = plain time / manager time)', rows);
  emit({
    bench: 'checkpoint-io',
    quick: QUICK,
    date: new Date().toISOString(),
    machine: m0,
    method:
      'save: CheckpointManager.commit (each blob hashed while written, 8 in flight, fsync each, rename to its sha256, dir fsyncs, manifest) on FsCheckpointStore ' +
      'vs plain fs (one file per blob, write + fsync each, dir fsync). restore: CheckpointManager.load (read + sha256 verify, one pass per blob) vs fs.readFile of each file; ' +
      'restore with the page cache warm (just written) and cold (files evicted with posix_fadvise DONTNEED). 24 blobs: 8 weights + Adam m and v each, random bytes. manager: commit with handOver (as trainChunk); manager-copy: default commit (copies first). ' +
      'Interleaved (order rotates per repetition), median; ratios are per repetition.',
    sizes: results,
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
