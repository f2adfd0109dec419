// `checkpoints list|verify|show|sign|pin|unpin|gc`: what a run has stored, whether it is intact, what is kept.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { CheckpointManager, checkpointKeysFromEnv, formatProblems, openStore, type VerifyResult } from '../checkpoint';
import type { RunSpec } from '../spec';
import { EXTRA_METRICS } from '../spec/catalog';
import { CliError, EXIT, fmt, type Out } from './common';
import { epochOfCompleted, evaluatedHere } from './epoch';
import { defineCommand, RUN_ID_ARGUMENT, CKPT_ARGUMENT } from './command';
import { connectClient } from './connection';

/** The run's checkpoint manager, with storage from --storage or the run's spec (memo). */
export async function managerForRun(
  client: Client | null,
  runId: string,
  storage?: string,
): Promise<CheckpointManager> {
  let url = storage;
  if (!url) {
    if (!client) throw new CliError('pass --storage URL (no Temporal connection to look up the run spec)', EXIT.usage);
    try {
      const desc = await client.workflow.getHandle(runId).describe();
      url = (desc.memo?.spec as RunSpec | undefined)?.checkpoint.storage;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        throw new CliError(
          `no run ${runId} on the server; pass --storage URL to read its checkpoints directly`,
          EXIT.notFound,
        );
      throw err;
    }
    if (!url) throw new CliError(`run ${runId} has no spec memo; pass --storage URL`, EXIT.usage);
  }
  let store;
  try {
    store = openStore(url);
  } catch (err) {
    // A URL the store opener refuses (no bucket, unknown scheme) is bad input, named as such.
    throw new CliError(`${storage ? '--storage: ' : `run ${runId}'s spec: `}${(err as Error).message}`, EXIT.usage);
  }
  let keys;
  try {
    keys = checkpointKeysFromEnv();
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.usage);
  }
  return new CheckpointManager(store, runId, { keys });
}

const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;

/**
 * Lists the run's checkpoints; with verify, returns 1 when any row is DAMAGED (0 otherwise). The table counts epochs
 * from 1 (the epoch of the checkpoint's last step: a checkpoint at an epoch's end carries that epoch's test metrics);
 * --json gives the manifests' own field, the number of epochs completed.
 */
/** A checkpoint's metrics in a line: accuracy (and auc, precision, recall, f1 when asked) or mse and mae (regression). */
export function metricsText(m: Record<string, number | null | undefined>): string {
  const part = (label: string, v: number | null | undefined) => (v !== undefined ? ` ${label} ${fmt(v)}` : '');
  const regression = [m.valMse, m.valMae, m.testMse, m.testMae].some((v) => v !== undefined);
  if (regression)
    return (
      `loss ${fmt(m.loss)}` +
      part('val mse', m.valMse) +
      part('val mae', m.valMae) +
      part('test mse', m.testMse) +
      part('test mae', m.testMae)
    );
  const extra = (prefix: 'val' | 'test') =>
    EXTRA_METRICS.map((k) => part(`${prefix} ${k}`, m[`${prefix}${k[0].toUpperCase()}${k.slice(1)}`])).join('');
  return (
    `loss ${fmt(m.loss)} acc ${fmt(m.accuracy, 3)}` +
    part('val acc', m.valAccuracy) +
    extra('val') +
    part('test acc', m.testAccuracy) +
    extra('test')
  );
}

export async function checkpointsList(
  manager: CheckpointManager,
  out: Out,
  opts: { verify?: boolean } = {},
): Promise<number> {
  const list = await manager.list({ verify: opts.verify });
  out.emit(list, () => {
    if (!list.length) return 'no checkpoints';
    const rows = list.map((c) =>
      [
        c.id,
        String(c.step).padStart(7),
        String(epochOfCompleted(c.epoch, c.step > 0 && evaluatedHere(c.metrics))).padStart(5),
        c.createdAt.replace('T', ' ').slice(0, 19),
        mb(c.sizeBytes).padStart(10),
        (c.newBytes === undefined ? '-' : mb(c.newBytes)).padStart(10),
        metricsText(c.metrics),
        (c.pinned ? 'pinned ' : '') +
          (c.valid === false ? `${c.untrusted ? 'REFUSED' : 'DAMAGED'} ${c.problem ?? ''}` : c.valid ? 'ok' : ''),
      ].join('  '),
    );
    return [
      'id                          step  epoch  created                    size         new  metrics',
      ...rows,
    ].join('\n');
  });
  return list.some((c) => c.valid === false) ? EXIT.check : EXIT.ok;
}

export async function checkpointsVerify(manager: CheckpointManager, out: Out, id?: string): Promise<number> {
  const ids = id ? [id] : (await manager.list()).map((c) => c.id);
  const results: VerifyResult[] = [];
  for (const ckpt of ids) results.push(await manager.verify(ckpt));
  const missing = id && results[0].problems.some((p) => p.reason === 'checkpoint not found');
  if (missing) throw new CliError(`no checkpoint ${id} in run ${manager.runId}`, EXIT.notFound);
  const bad = results.filter((r) => !r.ok);
  out.emit(
    { ok: bad.length === 0, results },
    () =>
      results.map((r) => (r.ok ? `${r.id}: ok` : `${r.id}: DAMAGED: ${formatProblems(r.problems)}`)).join('\n') ||
      'no checkpoints',
  );
  return bad.length ? EXIT.check : EXIT.ok;
}

export async function checkpointsShow(manager: CheckpointManager, out: Out, id: string): Promise<void> {
  const manifest = await manager.readManifest(id);
  out.emit(manifest, () => JSON.stringify(manifest, null, 2));
}

/**
 * Signs the run's checkpoints (or one) with the first key of DURABLE_TRAIN_CHECKPOINT_KEY, each after a full check
 * of its blobs: how checkpoints written before signing was turned on become loadable with it on. Returns 1 when
 * any checkpoint could not be signed (damaged, or refused by its signature), 0 otherwise.
 */
export async function checkpointsSign(
  manager: CheckpointManager,
  out: Out,
  id?: string,
  /** --i-have-checked: sign an unsigned checkpoint even in a run whose other checkpoints are signed. */
  checked = false,
): Promise<number> {
  if (!manager.signing) throw new CliError('checkpoints sign: set DURABLE_TRAIN_CHECKPOINT_KEY first', EXIT.usage);
  const ids = id ? [id] : (await manager.list()).map((c) => c.id);
  const results: Array<{ id: string; outcome: string; ok: boolean }> = [];
  // Decided once: a run being signed for the first time is signed whole; in a run that was already signed, an unsigned
  // checkpoint was written without the key and is refused (unless --i-have-checked).
  const signedBefore = await manager.signedIds();
  for (const ckpt of ids) {
    try {
      results.push({ id: ckpt, outcome: await manager.sign(ckpt, { checked, signedBefore }), ok: true });
    } catch (err) {
      if (!(err instanceof Error) || !/^Checkpoint(Corrupt|Signature|NotFound)Error$/.test(err.name)) throw err;
      results.push({ id: ckpt, outcome: `not signed: ${err.message}`, ok: false });
    }
  }
  out.emit({ ok: results.every((r) => r.ok), results }, () =>
    results.length ? results.map((r) => `${r.id}: ${r.outcome}`).join('\n') : 'no checkpoints',
  );
  return results.every((r) => r.ok) ? EXIT.ok : EXIT.check;
}

const STORAGE = {
  name: 'storage',
  value: 'URL',
  description:
    "read the checkpoints there (file://..., s3://...) instead of the run's spec's storage: no Temporal needed",
} as const;

/** The run's manager: through the server's record of the run, or straight from --storage. */
async function managerOf(runId: string, storage: string | undefined): Promise<CheckpointManager> {
  return managerForRun(storage ? null : await connectClient(), runId, storage);
}

export const checkpointsListDefinition = defineCommand({
  name: 'checkpoints list',
  summary:
    'id, step, epoch, time, size, bytes newly stored, metrics (and integrity with `--verify`, which exits 1 when a row is DAMAGED)',
  arguments: [RUN_ID_ARGUMENT],
  options: [{ name: 'verify', description: 're-hash every checkpoint; exit 1 when one is DAMAGED' }, STORAGE],
  async run({ args, opts, out }) {
    return checkpointsList(await managerOf(args.RUN_ID, opts.storage), out, { verify: opts.verify });
  },
});

export const checkpointsVerifyDefinition = defineCommand({
  name: 'checkpoints verify',
  summary: 're-hash every blob (of CKPT, or of every checkpoint); exits 1 and names the damaged blob',
  arguments: [RUN_ID_ARGUMENT, { ...CKPT_ARGUMENT, optional: true }],
  options: [STORAGE],
  async run({ args, opts, out }) {
    return checkpointsVerify(await managerOf(args.RUN_ID, opts.storage), out, args.CKPT);
  },
});

export const checkpointsShowDefinition = defineCommand({
  name: 'checkpoints show',
  summary: 'the manifest',
  arguments: [RUN_ID_ARGUMENT, CKPT_ARGUMENT],
  options: [STORAGE],
  async run({ args, opts, out }) {
    await checkpointsShow(await managerOf(args.RUN_ID, opts.storage), out, args.CKPT);
    return EXIT.ok;
  },
});

export const checkpointsSignDefinition = defineCommand({
  name: 'checkpoints sign',
  summary:
    'with `DURABLE_TRAIN_CHECKPOINT_KEY` set: sign checkpoints (after a full check) written before signing was on, or re-sign with a new first key',
  details:
    "Signs with DURABLE_TRAIN_CHECKPOINT_KEY's first key, after a full check; in a run whose checkpoints are signed, an unsigned one only with --i-have-checked.",
  arguments: [RUN_ID_ARGUMENT, { ...CKPT_ARGUMENT, optional: true }],
  options: [
    STORAGE,
    {
      name: 'i-have-checked',
      description: 'sign an unsigned checkpoint even in a run whose other checkpoints are signed',
    },
  ],
  async run({ args, opts, out }) {
    const checked = Boolean(opts['i-have-checked']);
    return checkpointsSign(await managerOf(args.RUN_ID, opts.storage), out, args.CKPT, checked);
  },
});

/**
 * Pins or unpins a checkpoint: a pinned one survives every retention rule until unpinned. Refuses an unknown
 * checkpoint (exit 3); unpinning one that is not pinned changes nothing.
 */
export async function checkpointsPin(manager: CheckpointManager, out: Out, id: string, pin: boolean): Promise<number> {
  if (pin) await manager.pin(id);
  else await manager.unpin(id);
  out.emit({ runId: manager.runId, id, pinned: pin }, () =>
    pin ? `${id}: pinned (kept by every retention rule)` : `${id}: unpinned`,
  );
  return EXIT.ok;
}

/**
 * Blob garbage collection: the blobs no checkpoint references, older than the grace period (a younger one may belong
 * to a commit still writing its manifest). A dry run by default; `apply` deletes them. Exits 1 when an unreadable
 * manifest makes it unsafe to collect (nothing is deleted then).
 */
export async function checkpointsGc(manager: CheckpointManager, out: Out, apply: boolean): Promise<number> {
  const r = await manager.collectGarbage({ apply });
  out.emit({ runId: manager.runId, dryRun: !apply, ...r }, () => {
    if (r.skipped) return `nothing collected: ${r.skipped}`;
    const young = r.young ? `; ${r.young} younger unreferenced blob(s) left for commits in progress` : '';
    if (!r.blobs.length) return `no unreferenced blobs${young}`;
    const what = `${r.blobs.length} unreferenced blob(s), ${mb(r.bytes)}`;
    return apply ? `deleted ${what}${young}` : `${what} (dry run: pass --apply to delete them)${young}`;
  });
  return r.skipped ? EXIT.check : EXIT.ok;
}

export const checkpointsPinDefinition = defineCommand({
  name: 'checkpoints pin',
  summary: 'keep CKPT whatever the retention rules say, until `checkpoints unpin`',
  arguments: [RUN_ID_ARGUMENT, CKPT_ARGUMENT],
  options: [STORAGE],
  async run({ args, opts, out }) {
    return checkpointsPin(await managerOf(args.RUN_ID, opts.storage), out, args.CKPT, true);
  },
});

export const checkpointsUnpinDefinition = defineCommand({
  name: 'checkpoints unpin',
  summary: 'let retention rules apply to CKPT again',
  arguments: [RUN_ID_ARGUMENT, CKPT_ARGUMENT],
  options: [STORAGE],
  async run({ args, opts, out }) {
    return checkpointsPin(await managerOf(args.RUN_ID, opts.storage), out, args.CKPT, false);
  },
});

export const checkpointsGcDefinition = defineCommand({
  name: 'checkpoints gc',
  summary:
    'blobs no checkpoint references (older than an hour): a dry run that lists them, `--apply` deletes them; safe while the run trains',
  arguments: [RUN_ID_ARGUMENT],
  options: [{ name: 'apply', description: 'delete the unreferenced blobs (default: only list them)' }, STORAGE],
  async run({ args, opts, out }) {
    return checkpointsGc(await managerOf(args.RUN_ID, opts.storage), out, Boolean(opts.apply));
  },
});
