// `export RUN_ID[:CKPT] --out DIR [--include-optimizer] [--bake-preprocessing] [--force]`: a checkpoint as a
// standard TF.js Layers model with its preprocessing beside it, written all or nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import {
  CheckpointCorruptError,
  CheckpointNotFoundError,
  NoValidCheckpointError,
  openStore,
  parseStoreUrl,
  type CheckpointStore,
  type Manifest,
} from '../checkpoint';
import { StorageUrlError } from '../storage';
import {
  exportModel,
  MODEL_JSON,
  OPTIMIZER_BIN,
  OPTIMIZER_JSON,
  WEIGHTS_BIN,
  type ExportFile,
} from '../training/export';
import type { NamedTensorBytes } from '../training';
import { managerForRun } from './checkpoints';
import { checkpointIdArg, CliError, EXIT, runIdArg, validateOrExit, type Out } from './common';
import type { RunSpec } from '../spec';
import { PREPROCESSING_JSON, preprocessingOf, type Preprocessing } from '../training/preprocess';
import { parseRunRef, sourceSpec } from './fork';
import { modelLabel } from '../spec/labels';
import { recordedFingerprintVersion } from '../training/model-fingerprint';
import { defineCommand } from './command';
import { connectClient } from './connection';

const EXPORT_DETAILS = `CKPT defaults to the run's newest valid checkpoint (verified; a damaged one is never exported).
Writes DIR/model.json + DIR/weights.bin (TF.js Layers format; loadForInference(DIR) from this package, or
tf.loadLayersModel with tf.io.fromMemory, or a file:// / http handler) and DIR/preprocessing.json (feature
names, standardisation, classes: docs/preprocessing.md); provenance in model.json userDefinedMetadata.durableTrain.
--bake-preprocessing puts the standardisation in the model as its first layer, so it takes raw rows.
--include-optimizer also writes DIR/optimizer.json (optimizer config, iterations, and a weights manifest of
the slots under their stable names, e.g. opt/adam/m/model/dense1/kernel) + DIR/optimizer.bin (their bytes;
tf.io.decodeWeights reads them). A non-empty DIR is refused unless --force (which replaces only these files).
DIR may also be a prefix in a store (s3://BUCKET/PREFIX, gs://, az://, with the credentials the checkpoints use):
each file is written atomically there, model.json last.`;

export interface ExportOptions {
  ref: string;
  out: string | undefined;
  includeOptimizer?: boolean;
  bakePreprocessing?: boolean;
  force?: boolean;
  storage?: string;
}

/** RUN_ID[:CKPT] with both ids checked (exit 2 naming the bad one). */
export function exportRef(ref: string): { runId: string; checkpointId?: string } {
  const r = parseRunRef(ref);
  return {
    runId: runIdArg(r.runId),
    checkpointId: r.checkpointId === undefined ? undefined : checkpointIdArg(r.checkpointId),
  };
}

/** A `RUN_ID[:CKPT]` argument, both ids checked before anything connects. */
export const RUN_REF_ARGUMENT = {
  name: 'RUN_ID[:CKPT]',
  check: (ref: string) => {
    exportRef(ref);
    return ref;
  },
} as const;

export interface RunCheckpoint {
  spec: RunSpec;
  manifest: Manifest;
  tensors: NamedTensorBytes[];
  /** The same bytes by tensor name. */
  blobs: Map<string, Uint8Array>;
  /** Damaged checkpoints passed over on the way to the newest valid one. */
  skipped: Array<{ id: string; problems: string }>;
}

/** A run's checkpoint (default: its newest valid one), verified, with the run's spec: what export and predict read. */
export async function readRunCheckpoint(
  client: Client,
  runId: string,
  checkpointId: string | undefined,
  storage: string | undefined,
  command = 'export',
): Promise<RunCheckpoint> {
  const spec = validateOrExit(await sourceSpec(client, runId), `run ${runId}'s spec`);
  const manager = await managerForRun(client, runId, storage);
  let skipped: RunCheckpoint['skipped'] = [];
  let id = checkpointId;
  if (!id) {
    try {
      const latest = await manager.latestValid();
      if (!latest) throw new CliError(`run ${runId} has no checkpoints to ${command}`, EXIT.notFound);
      id = latest.manifest.id;
      skipped = latest.skipped.map((s) => ({ id: s.id, problems: s.problems.map((p) => p.reason).join('; ') }));
    } catch (err) {
      if (err instanceof NoValidCheckpointError) throw new CliError(`${command}: ${err.message}`, EXIT.notFound);
      throw err;
    }
  }
  let loaded: { manifest: Manifest; blobs: Map<string, Uint8Array> };
  try {
    loaded = await manager.load(id); // verifies every blob's size and sha256
  } catch (err) {
    if (err instanceof CheckpointNotFoundError) throw new CliError(`${command}: ${err.message}`, EXIT.notFound);
    if (err instanceof CheckpointCorruptError)
      throw new CliError(
        `${command}: ${err.message}; nothing ${command === 'export' ? 'exported' : 'read'}`,
        EXIT.notFound,
      );
    throw err;
  }
  const { manifest, blobs } = loaded;
  const tensors: NamedTensorBytes[] = manifest.blobs.map((b) => ({
    name: b.name,
    dtype: b.dtype as NamedTensorBytes['dtype'],
    shape: b.shape,
    data: blobs.get(b.name)!,
  }));
  return { spec, manifest, tensors, blobs, skipped };
}

/**
 * The preprocessing a checkpoint recorded; for one written before checkpoints recorded it, recomputed from the run's
 * data (read as a worker in this directory reads it).
 */
export async function preprocessingOfCheckpoint(spec: RunSpec, manifest: Manifest): Promise<Preprocessing> {
  const recorded = (manifest.state as { preprocessing?: Preprocessing } | null)?.preprocessing;
  if (recorded) return recorded;
  const { loadTaskData } = await import('../training/task-data');
  try {
    return preprocessingOf(spec, await loadTaskData(spec));
  } catch (err) {
    throw new CliError(
      `checkpoint ${manifest.id} predates recorded preprocessing and the run's data cannot be read here: ${(err as Error).message}`,
      EXIT.notFound,
    );
  }
}

export async function exportCommand(client: Client, out: Out, opts: ExportOptions): Promise<void> {
  if (!opts.out) throw new CliError('export: --out DIR is required', EXIT.usage);
  const { runId, checkpointId } = exportRef(opts.ref);
  // A directory, or a prefix in a store (s3://, gs://, az://) beside the checkpoints.
  const store = exportStoreOf(opts.out);
  const dir = store ? opts.out.replace(/\/+$/, '') : path.resolve(opts.out);
  // Before any work, so a refusal is quick and touches nothing.
  if (store) await checkOutPrefix(store, dir, Boolean(opts.force));
  else checkOutDir(dir, Boolean(opts.force));

  const { spec, manifest, tensors, skipped } = await readRunCheckpoint(client, runId, checkpointId, opts.storage);
  const preprocessing = await preprocessingOfCheckpoint(spec, manifest);
  const metadata = {
    runId,
    checkpointId: manifest.id,
    step: manifest.step,
    epoch: manifest.epoch,
    createdAt: manifest.createdAt,
    model: modelLabel(spec.model),
    backend: manifest.backend,
    metrics: manifest.metrics,
  };
  let exported;
  try {
    const state = manifest.state as {
      featureShape?: number[];
      modelTopology?: unknown;
      fingerprintVersion?: unknown;
    } | null;
    exported = await exportModel(spec, tensors, {
      includeOptimizer: opts.includeOptimizer,
      metadata,
      featureShape: state?.featureShape,
      modelTopology: state?.modelTopology,
      fingerprintVersion: recordedFingerprintVersion(state),
      preprocessing,
      bakePreprocessing: opts.bakePreprocessing,
    });
  } catch (err) {
    throw new CliError(
      `export: checkpoint ${runId}:${manifest.id} cannot be exported: ${(err as Error).message}`,
      EXIT.notFound,
    );
  }
  if (manifest.fingerprints.model && manifest.fingerprints.model !== exported.modelFingerprint)
    throw new CliError(
      `export: checkpoint ${manifest.id} holds a different model topology than ${modelLabel(spec.model)}`,
      EXIT.notFound,
    );

  if (store) await writeToStore(store, dir, exported.files, Boolean(opts.force));
  else writeAllOrNothing(dir, exported.files, Boolean(opts.force));

  const join = (name: string) => (store ? `${dir}/${name}` : path.join(dir, name));
  const files = exported.files.map((f) => ({ name: f.name, path: join(f.name), bytes: f.data.byteLength }));
  out.emit(
    {
      runId,
      checkpoint: { id: manifest.id, step: manifest.step, epoch: manifest.epoch },
      out: dir,
      files,
      modelJson: join(MODEL_JSON),
      weights: exported.weights,
      parameterCount: exported.parameterCount,
      weightsSha256: exported.weightsSha256,
      optimizer: exported.optimizer,
      skipped,
    },
    () =>
      [
        ...skipped.map((s) => `skipped damaged checkpoint ${s.id}: ${s.problems}`),
        `exported ${runId}:${manifest.id} (step ${manifest.step}, epoch ${manifest.epoch}, ${modelLabel(spec.model)}, ` +
          `${exported.parameterCount} parameters) to ${dir}`,
        ...files.map((f) => `  ${f.name.padEnd(15)} ${String(f.bytes).padStart(10)} bytes`),
        `  weights sha256 ${exported.weightsSha256}`,
        ...(exported.optimizer
          ? [
              `  optimizer ${exported.optimizer.name}: ${exported.optimizer.tensors.length} tensors, ` +
                `iterations ${exported.optimizer.iterations}`,
            ]
          : []),
        `load with require('durable-train').loadForInference(${JSON.stringify(dir)}) (model + ${PREPROCESSING_JSON}: ` +
          '.predict(rows) on raw rows), or in plain @tensorflow/tfjs: tf.loadLayersModel(tf.io.fromMemory(...)) with ' +
          `model.json's modelTopology, its weightsManifest's weights and the bytes of ${WEIGHTS_BIN}`,
      ].join('\n'),
  );
}

/**
 * The store an --out names (s3://, gs://, az://: the store URL parser decides), or null for a local directory (a
 * path, or file://).
 */
function exportStoreOf(out: string): CheckpointStore | null {
  try {
    if (parseStoreUrl(out).kind === 'file') return null;
    return openStore(out);
  } catch (err) {
    if (err instanceof StorageUrlError && err.notAUrl) return null; // a path
    throw new CliError(`export: --out ${out}: ${(err as Error).message}`, EXIT.usage);
  }
}

/** A store prefix that holds anything is refused unless --force, as a non-empty directory is. */
async function checkOutPrefix(store: CheckpointStore, url: string, force: boolean): Promise<void> {
  let keys: string[];
  try {
    keys = await store.list('');
  } catch (err) {
    throw new CliError(`export: cannot list ${url}: ${(err as Error).message}`, EXIT.check);
  }
  if (!force && keys.length > 0)
    throw new CliError(
      `export: --out ${url} is not empty; pass --force to replace ${MODEL_JSON}, ${WEIGHTS_BIN} and optimizer.* in it`,
      EXIT.usage,
    );
}

/**
 * Writes the files into a store prefix, each one atomically, model.json last (what loaders start from): a reader
 * that finds model.json finds the files it names. With --force, optimizer.* and preprocessing.json left from an
 * earlier export are removed if not rewritten.
 */
async function writeToStore(store: CheckpointStore, url: string, files: ExportFile[], force: boolean): Promise<void> {
  await checkOutPrefix(store, url, force); // again: something may have appeared meanwhile
  const names = new Set(files.map((f) => f.name));
  const order = [...files.filter((f) => f.name !== MODEL_JSON), ...files.filter((f) => f.name === MODEL_JSON)];
  try {
    for (const f of order) await store.writeAtomic(f.name, f.data);
    for (const stale of [OPTIMIZER_JSON, OPTIMIZER_BIN, PREPROCESSING_JSON])
      if (!names.has(stale) && force) await store.delete(stale).catch(() => undefined);
  } catch (err) {
    throw new CliError(`export: cannot write ${url}: ${(err as Error).message}`, EXIT.check);
  }
}

function checkOutDir(dir: string, force: boolean): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return; // does not exist: fine
  }
  if (!st.isDirectory()) throw new CliError(`export: --out ${dir} exists and is not a directory`, EXIT.usage);
  if (!force && fs.readdirSync(dir).length > 0)
    throw new CliError(
      `export: --out ${dir} is not empty; pass --force to replace ${MODEL_JSON}, ${WEIGHTS_BIN} and optimizer.* in it`,
      EXIT.usage,
    );
}

function writeFileSynced(file: string, data: Uint8Array): void {
  const fd = fs.openSync(file, 'wx');
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // some filesystems refuse fsync on directories; the renames are still atomic
  }
}

const stagingName = () => `.durable-train-export-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;

/**
 * Writes the files into a staging directory first. A new (or empty) DIR is then one rename of the whole
 * directory; with --force into a non-empty DIR the data files are renamed over first and model.json last
 * (the file loaders start from), and optimizer.* left from an earlier export are removed if not rewritten.
 */
function writeAllOrNothing(dir: string, files: ExportFile[], force: boolean): void {
  checkOutDir(dir, force); // again: something may have appeared meanwhile
  const parent = path.dirname(dir);
  const existing = fs.existsSync(dir) && fs.readdirSync(dir).length > 0;
  const staging = existing ? path.join(dir, stagingName()) : path.join(parent, stagingName());
  let created = false;
  try {
    fs.mkdirSync(parent, { recursive: true });
    fs.mkdirSync(staging);
    created = true;
    for (const f of files) writeFileSynced(path.join(staging, f.name), f.data);
    fsyncDir(staging);
    if (!existing) {
      if (fs.existsSync(dir)) fs.rmdirSync(dir); // empty
      fs.renameSync(staging, dir);
      fsyncDir(parent);
      return;
    }
    const names = new Set(files.map((f) => f.name));
    const order = [...files.filter((f) => f.name !== MODEL_JSON), ...files.filter((f) => f.name === MODEL_JSON)];
    for (const f of order) fs.renameSync(path.join(staging, f.name), path.join(dir, f.name));
    for (const stale of [OPTIMIZER_JSON, OPTIMIZER_BIN, PREPROCESSING_JSON])
      if (!names.has(stale)) fs.rmSync(path.join(dir, stale), { force: true });
    fs.rmdirSync(staging);
    fsyncDir(dir);
  } catch (err) {
    if (created) fs.rmSync(staging, { recursive: true, force: true });
    throw new CliError(`export: cannot write ${dir}: ${(err as Error).message}`, EXIT.check);
  }
}

export const exportDefinition = defineCommand({
  name: 'export',
  summary:
    'a TF.js Layers model (`model.json` + `weights.bin`) that `tf.loadLayersModel` loads, with `preprocessing.json`; optionally the optimizer slots by name',
  details: EXPORT_DETAILS,
  arguments: [RUN_REF_ARGUMENT],
  options: [
    {
      name: 'out',
      value: 'DIR',
      required: true,
      description: 'the directory to write (created; a non-empty one only with --force)',
    },
    { name: 'include-optimizer', description: 'also write optimizer.json + optimizer.bin (the slots by name)' },
    {
      name: 'bake-preprocessing',
      description: 'put the standardisation in the model as its first layer (it takes raw rows)',
    },
    { name: 'force', description: 'write into a non-empty DIR (replaces only these files)' },
    { name: 'storage', value: 'URL', description: "read the checkpoint there instead of the run's spec's storage" },
  ],
  async run({ args, opts, out }) {
    const ref = args['RUN_ID[:CKPT]'];
    await exportCommand(await connectClient(), out, {
      ref,
      out: opts.out,
      includeOptimizer: opts['include-optimizer'],
      bakePreprocessing: opts['bake-preprocessing'],
      force: opts.force,
      storage: opts.storage,
    });
    return EXIT.ok;
  },
});
