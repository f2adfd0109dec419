// CheckpointManager: commit protocol, listing, verification, fallback to the newest valid checkpoint, pins and
// retention with blob garbage collection, for one run in one store. See docs/checkpoint-format.md.
//
// Damage vs storage failure: a checkpoint is reported damaged or missing only when the store answered (a missing
// key, bytes that do not verify). A StorageUnavailableError from the store always propagates unchanged: it never
// becomes a verification problem, never makes latestValid skip a checkpoint, and never gets one deleted.
// Over 400 lines on purpose: commit, verify, list, retention and blob GC are one protocol over one key layout; the
// format, the stores and the retention policies live beside it (codec.ts, retention.ts; the stores in storage/).
import pLimit from 'p-limit';
import {
  assertJson,
  assertSafeName,
  CHECKPOINT_ID,
  checkpointId,
  decodeManifest,
  encodeManifest,
  expectedSize,
  formatVersionOf,
  manifestBodyHash,
  MAX_RANK,
  MAX_STATE_DEPTH,
  SHA256_HEX,
  nestsDeeperThan,
  sha256HexOffThread,
  sha256HexYielding,
  stepFromId,
  validShape,
} from './codec';
import { CheckpointCorruptError, CheckpointSignatureError, NoValidCheckpointError } from './errors';
import { formatProblems } from './problems';
import { hasAnyRule, newestFirst, selectRetained, validatePolicy } from './retention';
import { assemble, planRows, storedPieces, type RowPlan } from './rows';
import { commitInThread, type StoreAddress } from './persist-thread';
import type { CheckpointKeys } from './signing';
import { CheckpointNotFoundError, type CheckpointStore } from '../storage/interface';
import type {
  BlobInput,
  CheckpointSummary,
  CommitInput,
  Manifest,
  ManifestBlob,
  RetentionPolicy,
  RetentionResult,
  VerifyResult,
} from './types';

export interface CheckpointManagerOptions {
  /** Parallel blob reads/writes. Default 8. */
  concurrency?: number;
  /**
   * How retention decides that a checkpoint is damaged before counting it as latest or best: 'full' re-hashes its
   * blobs, 'quick' checks the manifest and the blobs' presence and sizes only, 'auto' (default) re-hashes checkpoints
   * up to AUTO_FULL_VERIFY_MAX_BYTES and checks larger ones quickly. A restore always re-hashes what it loads.
   */
  retentionVerify?: RetentionVerify;
  /** Blob GC spares unreferenced blobs younger than this (a commit may still be writing its manifest). Default 1 h. */
  blobGcGraceMs?: number;
  /** Called after a commit's blobs are written and before its manifest (the commit point): a failpoint for crash tests. */
  beforeManifest?: (step: number, runId: string) => void | Promise<void>;
  /**
   * Where a persist thread opens this run's store again (its URL): `commitInBackground` then persists there. Unset for a
   * store built in code (commitInBackground persists on this thread).
   */
  thread?: StoreAddress;
  /**
   * Signing on: every manifest committed is signed with the first key, and every manifest read must carry a
   * signature by one of the keys, or it is refused with CheckpointSignatureError (never skipped like damage).
   * Parse DURABLE_TRAIN_CHECKPOINT_KEY with checkpointKeysFromEnv() where the store is opened.
   */
  keys?: CheckpointKeys;
}

export interface CommitOptions {
  /**
   * The caller hands the blob buffers over: it will never write to them again (e.g. a fresh snapshot), so commit
   * skips its defensive copy. Default false: commit copies every byte before its first await.
   */
  handOver?: boolean;
  /**
   * Hash the blobs on the libuv pool (WebCrypto) rather than on this thread, then write them by their address: for a
   * persist that runs in the background while training goes on. Default false (hash while writing, one pass).
   */
  hashOffThread?: boolean;
  /**
   * A check that runs beside the hashing and the blob writes: the manifest waits for it, and the commit fails with
   * its error (nothing visible: blobs no manifest names are left to blob GC).
   */
  publishAfter?: Promise<unknown>;
  /**
   * The run's previous checkpoint, whose blobs the inputs' `changes` refer to: a blob unchanged since it keeps its
   * entry, one with few changed rows is stored as a row patch on its chain (see rows.ts).
   */
  previous?: Manifest;
}

/** A manifest as read from the store during a listing: parsed, or null with the reason it does not parse. */
interface StoredManifest {
  id: string;
  manifest: Manifest | null;
  problem?: string;
  manifestBytes: number;
  /** Set (with signing on) when the manifest parses but its signature is refused. */
  untrusted?: CheckpointSignatureError;
}

export type RetentionVerify = 'auto' | 'full' | 'quick';

/**
 * Under retentionVerify 'auto', checkpoints up to this size are re-hashed by retention, larger ones checked by size.
 * Retention re-hashes every checkpoint it keeps at every chunk end: about 1 s per GB on one core here (with
 * keepLatest 5, 16 MiB checkpoints cost about 0.1 s per chunk; the 290 MB wide-mlp with Adam cost 0.86 s each).
 */
export const AUTO_FULL_VERIFY_MAX_BYTES = 16 * 2 ** 20;

/** Blobs of a run that no manifest references (older than the grace period), found or deleted by `collectGarbage`. */
export interface GarbageReport {
  /** The blobs' keys and sizes. */
  blobs: Array<{ key: string; size: number }>;
  bytes: number;
  /** How many were deleted (0 on a dry run). */
  deleted: number;
  /** Set when nothing could be collected safely (an unreadable manifest: its blobs are unknown). */
  skipped?: string;
  /** Unreferenced blobs younger than the grace period: maybe a commit still writing its manifest; left alone. */
  young: number;
}

export class CheckpointManager {
  private readonly concurrency: number;
  private readonly retentionVerify: RetentionVerify;
  private readonly gcGraceMs: number;
  private readonly beforeManifest?: (step: number, runId: string) => void | Promise<void>;
  private readonly keys?: CheckpointKeys;
  private readonly thread?: StoreAddress;
  /** The key ids this manager signs and verifies with (the first signs), or null with signing off. */
  get signing(): readonly string[] | null {
    return this.keys?.ids ?? null;
  }

  constructor(
    readonly store: CheckpointStore,
    readonly runId: string,
    opts: CheckpointManagerOptions = {},
  ) {
    assertSafeName('run id', runId);
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
    this.retentionVerify = opts.retentionVerify ?? 'auto';
    this.gcGraceMs = opts.blobGcGraceMs ?? 60 * 60_000;
    this.beforeManifest = opts.beforeManifest;
    this.keys = opts.keys;
    this.thread = opts.thread;
  }

  blobKey(sha256: string): string {
    return `${this.blobPrefix()}${sha256}`;
  }
  /** Where the run's content-addressed blobs live: blobKey(sha) = blobPrefix() + sha. */
  blobPrefix(): string {
    return `${this.runId}/blobs/`;
  }
  manifestKey(id: string): string {
    return `${this.runId}/manifests/${id}.json`;
  }
  pinKey(id: string): string {
    return `${this.runId}/pins/${id}`;
  }

  /**
   * Commits a checkpoint: blobs first (content-addressed, deduplicated, in parallel), the manifest last as the
   * commit point. Resolves only once everything is durable; any error rejects (nothing is swallowed), and a
   * failure before the manifest write leaves no visible checkpoint.
   */
  async commit(input: CommitInput, opts: CommitOptions = {}): Promise<Manifest> {
    // Snapshot everything before the first await: a trainer that keeps running while the commit is in flight
    // (time-based commits overlap training) would otherwise leak the next steps' weights into this checkpoint,
    // and a resume from it would not be exact. A caller that hands its buffers over (a fresh snapshot it never
    // touches again) spares the copy.
    const meta = this.validateCommit(input);
    const blobs = input.blobs.map((b) => ({
      name: b.name,
      dtype: b.dtype,
      shape: [...b.shape],
      data: opts.handOver ? b.data : copyBytes(b.data),
      ...(b.changes ? { changes: { from: b.changes.from, rows: Uint32Array.from(b.changes.rows) } } : {}),
    }));

    // Blobs that say what changed since the previous checkpoint: hashed first, then kept, patched or stored whole.
    const rowPlans = await this.planRowPatches(blobs, opts);
    const whole = blobs.filter((_, i) => rowPlans[i]?.plan.kind !== 'same' && rowPlans[i]?.plan.kind !== 'patch');
    const shasOfWhole = await this.writeWhole(whole, opts);
    const described: ManifestBlob[] = [];
    for (const [i, b] of blobs.entries()) {
      const rp = rowPlans[i];
      if (rp?.plan.kind === 'same') described.push({ ...rp.plan.entry, name: b.name });
      else if (rp?.plan.kind === 'patch')
        described.push({
          ...describe(b, rp.sha256),
          rows: { ...rp.plan.chain, patches: [...rp.plan.chain.patches, rp.patch!] },
        });
      else described.push(describe(b, shasOfWhole.shift()!));
    }

    await opts.publishAfter;
    await this.beforeManifest?.(meta.step, this.runId);
    const body: Omit<Manifest, 'id'> = {
      formatVersion: formatVersionOf(described),
      runId: this.runId,
      ...meta,
      blobs: described,
    };
    const manifest: Manifest = { ...body, id: checkpointId(body.step, manifestBodyHash(body)) };
    if (this.keys) manifest.signature = this.keys.sign(manifest);
    await this.store.writeAtomic(this.manifestKey(manifest.id), encodeManifest(manifest), { ifAbsent: true });
    return manifest;
  }

  /**
   * Whether commitInBackground reads views of shared memory as they are: in the persist thread, on a store whose
   * writes take them (WebCrypto, which hashes here without the thread, refuses them).
   */
  get readsSharedMemory(): boolean {
    return !!this.thread && this.store.readsSharedMemory === true;
  }

  /**
   * A commit for the background (the caller hands its buffers over, and may train on): in the process's persist thread
   * when the store can be opened there (see persist-thread.ts), which also checks every float32 blob is finite; else
   * here, hashing on the libuv pool, with `finite` as the check. Resolves once the manifest is durable. The blobs'
   * `data` may be new views of the same memory afterwards (moved to the thread and back).
   */
  commitInBackground(input: CommitInput, o: { previous?: Manifest; finite: () => Promise<void> }): Promise<Manifest> {
    if (!this.thread) {
      const finite = o.finite();
      finite.catch(() => undefined); // observed by the commit (which may fail first, on storage)
      return this.commit(input, { handOver: true, hashOffThread: true, publishAfter: finite, previous: o.previous });
    }
    return commitInThread({
      store: this.thread,
      runId: this.runId,
      concurrency: this.concurrency,
      keys: this.keys?.forPersistThread() ?? null,
      input,
      previous: o.previous,
      beforeManifest: this.beforeManifest,
    });
  }

  /**
   * For each blob with `changes` against `opts.previous` (this run's): its sha256 and what to do with it; a patch is
   * written here. Other blobs get no plan.
   */
  private async planRowPatches(
    blobs: BlobCopy[],
    opts: CommitOptions,
  ): Promise<Array<{ sha256: string; plan: RowPlan; patch?: { sha256: string; size: number } } | undefined>> {
    const prev = opts.previous?.runId === this.runId ? new Map(opts.previous.blobs.map((b) => [b.name, b])) : null;
    if (!prev) return [];
    const hash = opts.hashOffThread ? sha256HexOffThread : sha256HexYielding;
    return mapLimit(blobs, this.concurrency, async (b) => {
      const before = prev.get(b.name);
      if (!b.changes || !before || before.sha256 !== b.changes.from) return undefined;
      const sha256 = await hash(b.data);
      const plan = planRows(b, sha256, before);
      if (plan.kind !== 'patch') return { sha256, plan };
      const patchSha = await hash(plan.patch);
      await this.store.writeBlob(this.blobKey(patchSha), plan.patch);
      return { sha256, plan, patch: { sha256: patchSha, size: plan.patch.byteLength } };
    });
  }

  /** Writes blobs stored whole (content-addressed, deduplicated, in parallel); returns their sha256s in order. */
  private async writeWhole(blobs: BlobCopy[], opts: CommitOptions): Promise<string[]> {
    let shas: string[];
    const streaming = this.store.writeContentAddressed?.bind(this.store);
    if (opts.hashOffThread) {
      // All at once: the pool queues the work itself, and every continuation here waits for the event loop (a
      // training step) before it runs, so fewer rounds mean a shorter persist.
      shas = await Promise.all(blobs.map((b) => sha256HexOffThread(b.data)));
      const unique = new Map(shas.map((sha, i) => [sha, blobs[i].data]));
      await forEachLimit([...unique], Math.max(this.concurrency, unique.size), ([sha, data]) =>
        this.store.writeBlob(this.blobKey(sha), data),
      );
    } else if (streaming) {
      // One pass per blob: hashed while it is written, then renamed to its content address.
      shas = await mapLimit(blobs, this.concurrency, (b) => streaming(this.blobPrefix(), b.data));
    } else {
      shas = [];
      const unique = new Map<string, Uint8Array>();
      for (const b of blobs) {
        const sha256 = await sha256HexYielding(b.data);
        shas.push(sha256);
        unique.set(sha256, b.data);
      }
      await forEachLimit([...unique], this.concurrency, ([sha, data]) => this.store.writeBlob(this.blobKey(sha), data));
    }
    return shas;
  }

  private validateCommit(input: CommitInput): Omit<Manifest, 'formatVersion' | 'id' | 'runId' | 'blobs'> {
    const fail = (msg: string): never => {
      throw new TypeError(`checkpoint commit: ${msg}`);
    };
    if (!Number.isSafeInteger(input.step) || input.step < 0) fail(`step ${input.step} is not a non-negative integer`);
    if (typeof input.epoch !== 'number' || !Number.isFinite(input.epoch))
      fail(`epoch ${input.epoch} is not a finite number`);
    if (typeof input.createdAt !== 'string' || Number.isNaN(Date.parse(input.createdAt)))
      fail(`createdAt ${JSON.stringify(input.createdAt)} is not an ISO date`);
    if (input.parent !== null && (typeof input.parent?.runId !== 'string' || typeof input.parent?.id !== 'string'))
      fail('parent must be null or {runId, id}');
    if (!Array.isArray(input.blobs)) fail('blobs must be an array');
    const names = new Set<string>();
    for (const b of input.blobs) {
      if (typeof b.name !== 'string' || !b.name) fail('every blob needs a non-empty name');
      if (names.has(b.name)) fail(`blob name ${b.name} appears twice`);
      names.add(b.name);
      if (typeof b.dtype !== 'string') fail(`blob ${b.name}: dtype must be a string`);
      if (!validShape(b.shape)) fail(`blob ${b.name}: shape must be a list of non-negative integers`);
      if (b.shape.length > MAX_RANK) fail(`blob ${b.name}: shape has more than ${MAX_RANK} dimensions`);
      if (!(b.data instanceof Uint8Array)) fail(`blob ${b.name}: data must be a Uint8Array`);
      const want = expectedSize(b.dtype, b.shape);
      if (want !== null && want !== b.data.byteLength)
        fail(`blob ${b.name}: ${b.dtype}[${b.shape.join(',')}] needs ${want} bytes, got ${b.data.byteLength}`);
      if (b.changes !== undefined) {
        const { from, rows } = b.changes;
        if (typeof from !== 'string' || !SHA256_HEX.test(from)) fail(`blob ${b.name}: changes.from is not a sha256`);
        if (
          !(rows instanceof Uint32Array) ||
          rows.some((r, k) => r >= (b.shape[0] ?? 0) || (k > 0 && r <= rows[k - 1]))
        )
          fail(`blob ${b.name}: changes.rows must be ascending row indices below ${b.shape[0] ?? 0}`);
      }
    }
    for (const [k, v] of Object.entries(input.metrics ?? fail('metrics missing'))) {
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(`metric ${k} is ${v}: metrics must be finite numbers`);
    }
    for (const [k, v] of Object.entries(input.fingerprints ?? fail('fingerprints missing'))) {
      if (typeof v !== 'string') fail(`fingerprint ${k} must be a string`);
    }
    if (typeof input.backend?.name !== 'string' || typeof input.backend?.version !== 'string')
      fail('backend must be {name, version}');
    if (input.reason !== undefined && typeof input.reason !== 'string') fail('reason must be a string');
    if (input.state === undefined) fail('state is missing (use null for none)');
    // What could be committed must read back: the decoder refuses deeper state.
    if (nestsDeeperThan(input.state, MAX_STATE_DEPTH)) fail(`state nests deeper than ${MAX_STATE_DEPTH} levels`);
    assertJson(input.state, 'state');
    // A deep copy through JSON (validated above to be lossless) detaches the state from the caller.
    return {
      step: input.step,
      epoch: input.epoch,
      createdAt: input.createdAt,
      parent: input.parent ? { runId: input.parent.runId, id: input.parent.id } : null,
      state: JSON.parse(JSON.stringify(input.state)),
      metrics: { ...input.metrics },
      fingerprints: { ...input.fingerprints },
      backend: { name: input.backend.name, version: input.backend.version },
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
    };
  }

  /** Every checkpoint of the run, oldest first (by step, then createdAt). Unreadable manifests are listed invalid. */
  async list(opts: { verify?: boolean } = {}): Promise<CheckpointSummary[]> {
    const [entries, pins] = await Promise.all([this.readEntries(), this.pinnedIds()]);
    const out = await mapLimit(entries, this.concurrency, async (e): Promise<CheckpointSummary> => {
      if (!e.manifest) {
        return {
          id: e.id,
          runId: this.runId,
          step: stepFromId(e.id),
          epoch: -1,
          createdAt: '',
          sizeBytes: e.manifestBytes,
          metrics: {},
          parent: null,
          pinned: pins.has(e.id),
          valid: false,
          problem: formatProblems([{ reason: `manifest: ${e.problem}` }]),
        };
      }
      const m = e.manifest;
      let valid: boolean | null = null;
      let problem: string | undefined;
      if (e.untrusted) {
        valid = false;
        problem = e.untrusted.message;
      } else if (opts.verify) {
        const v = await this.verifyManifest(m);
        valid = v.ok;
        if (!v.ok) problem = formatProblems(v.problems);
      }
      return {
        id: m.id,
        runId: m.runId,
        step: m.step,
        epoch: m.epoch,
        createdAt: m.createdAt,
        sizeBytes: m.blobs.reduce((a, b) => a + b.size, 0),
        metrics: m.metrics,
        parent: m.parent,
        pinned: pins.has(m.id),
        valid,
        ...(problem !== undefined ? { problem } : {}),
        ...(e.untrusted ? { untrusted: true } : {}),
      };
    });
    out.sort((a, b) => -newestFirst(a, b));
    // The bytes each checkpoint added to the store: its blobs that no older stored checkpoint references.
    const byId = new Map(entries.map((e) => [e.id, e.manifest]));
    const stored = new Set<string>();
    for (const c of out) {
      const m = byId.get(c.id);
      if (!m) continue;
      let added = 0;
      for (const piece of m.blobs.flatMap(storedPieces)) {
        if (stored.has(piece.sha256)) continue;
        stored.add(piece.sha256);
        added += piece.size;
      }
      c.newBytes = added;
    }
    return out;
  }

  /**
   * The manifest, checked (structure, id, content hash, and with signing on its signature). Throws
   * CheckpointNotFoundError, CheckpointCorruptError or CheckpointSignatureError.
   */
  async readManifest(id: string): Promise<Manifest> {
    const m = await this.readUnsigned(id);
    const refused = this.signatureError(m);
    if (refused) throw refused;
    return m;
  }

  /**
   * Signs a stored checkpoint with the first key: the way to turn signing on for checkpoints written before, or to
   * re-sign with a new key before an old one is retired. Only a checkpoint that verifies completely (every blob
   * re-hashed) and is unsigned or correctly signed is signed: a wrong signature or one by a key not held here is
   * refused (CheckpointSignatureError). The id does not change (the signature is not part of the id's hash).
   */
  async sign(
    id: string,
    opts: {
      /** Sign an unsigned checkpoint even in a run whose other checkpoints are signed (the operator checked it). */
      checked?: boolean;
      /** The run's checkpoints that were signed before a batch began (signedIds()): the batch's own do not count. */
      signedBefore?: ReadonlySet<string>;
    } = {},
  ): Promise<'signed' | 're-signed' | 'already signed'> {
    if (!this.keys) throw new Error('checkpoint sign: no checkpoint keys given (set DURABLE_TRAIN_CHECKPOINT_KEY)');
    const m = await this.readUnsigned(id);
    const problem = this.keys.problem(m);
    if (!problem && m.signature?.keyId === this.keys.signingKeyId) return 'already signed';
    if (problem && problem.kind !== 'missing')
      throw new CheckpointSignatureError(this.runId, id, problem.kind, problem.text);
    // Signing exists for runs written before it was turned on. An unsigned manifest beside signed ones of its run was
    // written after signing was on, by someone without the key: signing it would launder a forgery.
    if (problem && !opts.checked) {
      const entries = await this.readEntries();
      const signedIds =
        opts.signedBefore ?? new Set(entries.filter((e) => e.manifest && !e.untrusted).map((e) => e.id));
      const signed = entries.filter((e) => e.manifest && signedIds.has(e.id) && e.id !== id);
      if (signed.length) {
        const newest = signed.reduce((a, b) => (b.manifest!.step > a.manifest!.step ? b : a));
        throw new CheckpointSignatureError(
          this.runId,
          id,
          'forged',
          `is unsigned (step ${m.step}) in a run whose other checkpoints are signed (newest signed: ${newest.id} at ` +
            `step ${newest.manifest!.step}): it was written without the key, so it is not signed`,
        );
      }
    }
    const v = await this.verifyManifest(m);
    if (!v.ok) throw new CheckpointCorruptError(id, v.problems[0].blob, v.problems[0].reason);
    const signed: Manifest = { ...m, signature: this.keys.sign(m) };
    await this.store.writeAtomic(this.manifestKey(id), encodeManifest(signed));
    return problem ? 'signed' : 're-signed';
  }

  /** The ids of the run's checkpoints whose manifests are signed by one of our keys. */
  async signedIds(): Promise<Set<string>> {
    return new Set((await this.readEntries()).filter((e) => e.manifest && !e.untrusted).map((e) => e.id));
  }

  /** The manifest checked for structure, id, content hash and run, but not for its signature. */
  private async readUnsigned(id: string): Promise<Manifest> {
    this.assertId(id);
    const bytes = await this.store.read(this.manifestKey(id)).catch((err) => {
      if (err instanceof CheckpointNotFoundError)
        throw new CheckpointNotFoundError(
          this.manifestKey(id),
          `no checkpoint ${id} in run ${this.runId} at ${this.store.url}`,
        );
      throw err;
    });
    try {
      return this.checkRun(decodeManifest(bytes, id));
    } catch (err) {
      throw new CheckpointCorruptError(id, undefined, (err as Error).message);
    }
  }

  /**
   * Loads every blob, verifying size and sha256. A damaged checkpoint throws CheckpointCorruptError, a missing one
   * CheckpointNotFoundError; a storage failure throws StorageUnavailableError.
   */
  /**
   * Reads a checkpoint, every blob verified against its manifest entry. `only` reads just the blobs it names (the
   * manifest returned then lists just those), asked with the whole manifest at hand: a replica of a distributed run
   * reads the global weights and its own optimizer slots, not every replica's.
   */
  async load(
    id: string,
    opts: { only?: (name: string, manifest: Manifest) => boolean } = {},
  ): Promise<{ manifest: Manifest; blobs: Map<string, Uint8Array> }> {
    const full = await this.readManifest(id);
    const manifest = opts.only ? { ...full, blobs: full.blobs.filter((b) => opts.only!(b.name, full)) } : full;
    const blobs = new Map<string, Uint8Array>();
    const bySha = new Map<string, Uint8Array>();
    await forEachLimit(manifest.blobs, this.concurrency, async (b) => {
      const problem = await this.checkBlob(b, (data) => bySha.set(b.sha256, data));
      if (problem) throw new CheckpointCorruptError(id, b.name, problem);
    });
    for (const b of manifest.blobs) blobs.set(b.name, bySha.get(b.sha256)!);
    return { manifest, blobs };
  }

  /**
   * Checks one checkpoint completely; reports every problem found (a missing checkpoint is `checkpoint not found`).
   * A storage failure is not a problem of the checkpoint: StorageUnavailableError propagates.
   */
  async verify(id: string): Promise<VerifyResult> {
    let manifest: Manifest;
    try {
      manifest = await this.readManifest(id);
    } catch (err) {
      if (err instanceof CheckpointNotFoundError)
        return { id, ok: false, problems: [{ reason: 'checkpoint not found' }] };
      if (err instanceof CheckpointCorruptError)
        return { id, ok: false, problems: [{ reason: `manifest: ${err.reason}` }] };
      throw err;
    }
    return this.verifyManifest(manifest);
  }

  /**
   * The newest checkpoint that verifies, with the damaged newer ones it skipped (log them, count them, show them).
   * null only when the run has no checkpoint at all; when it has some and none verifies, throws
   * NoValidCheckpointError rather than let a caller start the run over by mistake. A storage failure throws
   * StorageUnavailableError: it never counts as a damaged checkpoint to skip.
   */
  async latestValid(): Promise<{ manifest: Manifest; skipped: VerifyResult[] } | null> {
    const entries = (await this.readEntries()).sort((a, b) =>
      newestFirst(
        { step: stepOf(a), createdAt: a.manifest?.createdAt ?? '', id: a.id },
        { step: stepOf(b), createdAt: b.manifest?.createdAt ?? '', id: b.id },
      ),
    );
    const skipped: VerifyResult[] = [];
    for (const e of entries) {
      if (!e.manifest) {
        skipped.push({ id: e.id, ok: false, problems: [{ reason: `manifest: ${e.problem}` }] });
        continue;
      }
      // A refused signature is not damage to step over: someone changed the store, or a key is missing here.
      if (e.untrusted) throw e.untrusted;
      const v = await this.verifyManifest(e.manifest);
      if (v.ok) return { manifest: e.manifest, skipped };
      // Deleted by retention since the listing (its blobs went with it): not damage.
      if (!(await this.store.exists(this.manifestKey(e.id)))) continue;
      skipped.push(v);
    }
    if (skipped.length) throw new NoValidCheckpointError(this.runId, skipped);
    return null;
  }

  async pin(id: string): Promise<void> {
    this.assertId(id);
    if (!(await this.store.exists(this.manifestKey(id)))) {
      throw new CheckpointNotFoundError(
        this.manifestKey(id),
        `cannot pin ${id}: no such checkpoint in run ${this.runId}`,
      );
    }
    await this.store.writeAtomic(this.pinKey(id), new TextEncoder().encode(JSON.stringify({ id }) + '\n'), {
      ifAbsent: true,
    });
  }

  async unpin(id: string): Promise<void> {
    this.assertId(id);
    await this.store.delete(this.pinKey(id));
  }

  /**
   * Applies independent retention rules over every stored checkpoint (so it is right after restarts). Survivors:
   * kept by any rule, pinned, in `protect`, or the newest valid one. Deletes manifests first, then the blobs that
   * no remaining manifest references (sparing blobs younger than the GC grace period).
   */
  async applyRetention(policy: RetentionPolicy, protect: string[] = []): Promise<RetentionResult> {
    validatePolicy(policy);
    const [entries, pins] = await Promise.all([this.readEntries(), this.pinnedIds()]);
    let deleted: string[] = [];
    const kept = new Set<string>();

    if (!hasAnyRule(policy)) {
      entries.forEach((e) => kept.add(e.id)); // no rule: keep everything rather than delete everything
    } else {
      const validity = new Map<string, Promise<boolean>>();
      let blobIndex: Promise<Map<string, number>> | null = null;
      const isValid = (id: string): Promise<boolean> => {
        let p = validity.get(id);
        if (!p) {
          const e = entries.find((x) => x.id === id);
          const m = e?.manifest;
          if (!m || e.untrusted) p = Promise.resolve(false);
          else if (this.fullVerify(m)) p = this.verifyManifest(m).then((v) => v.ok);
          else {
            blobIndex ??= this.blobSizes();
            p = blobIndex.then((idx) => m.blobs.flatMap(storedPieces).every((b) => idx.get(b.sha256) === b.size));
          }
          validity.set(id, p);
        }
        return p;
      };
      const candidates = entries.flatMap((e) => (e.manifest ? [e.manifest] : []));
      const keep = await selectRetained(candidates, policy, isValid);
      const protectedIds = new Set(protect);
      for (const e of entries) {
        // Refused signatures are kept as they are: evidence for whoever investigates, not garbage.
        if (keep.has(e.id) || pins.has(e.id) || protectedIds.has(e.id) || e.untrusted) kept.add(e.id);
        else deleted.push(e.id);
      }
      deleted = deleted.sort();
      // Manifests first: from here on these checkpoints are gone, and only then may their blobs go.
      await forEachLimit(deleted, this.concurrency, (id) => this.store.delete(this.manifestKey(id)));
    }

    const gc = await this.collectGarbage({ apply: true });
    return {
      deleted,
      kept: [...kept].sort(),
      blobsDeleted: gc.deleted,
      ...(gc.skipped !== undefined ? { gcSkipped: gc.skipped } : {}),
    };
  }

  /**
   * Blobs no manifest references, if older than the grace period (a younger one may belong to a commit still writing
   * its manifest). With `apply`, deletes them and sweeps stale temp files; without, only reports them. Safe while the
   * run writes: manifests are re-read now, so a checkpoint committed meanwhile keeps its blobs.
   */
  async collectGarbage(opts: { apply: boolean }): Promise<GarbageReport> {
    const entries = await this.readEntries();
    const unreadable = entries.filter((e) => !e.manifest);
    if (unreadable.length) {
      const skipped = `unreadable manifest(s) ${unreadable.map((e) => e.id).join(', ')}: their blobs are unknown`;
      return { blobs: [], bytes: 0, deleted: 0, skipped, young: 0 };
    }
    const referenced = new Set(entries.flatMap((e) => e.manifest!.blobs.flatMap(storedPieces).map((b) => b.sha256)));
    const prefix = this.blobPrefix();
    const now = Date.now();
    const unreferenced = (await this.store.listDetailed(prefix)).filter(
      (b) => !referenced.has(b.key.slice(prefix.length)),
    );
    let garbage = unreferenced.filter((b) => now - b.mtimeMs >= this.gcGraceMs);
    if (opts.apply && garbage.length) {
      // Manifests once more, after the listing: a commit that reused an old blob (refreshing its time after the
      // manifests were first read) and has published its manifest since keeps it.
      const again = new Set(
        (await this.readEntries()).flatMap((e) => e.manifest?.blobs.flatMap(storedPieces).map((x) => x.sha256) ?? []),
      );
      garbage = garbage.filter((g) => !again.has(g.key.slice(prefix.length)));
    }
    if (opts.apply) {
      await forEachLimit(garbage, this.concurrency, (b) => this.store.delete(b.key));
      if (this.store.sweepTemp) await this.store.sweepTemp(`${this.runId}/`, Math.max(this.gcGraceMs, 60_000));
    }
    return {
      blobs: garbage.map((b) => ({ key: b.key, size: b.size })),
      bytes: garbage.reduce((n, b) => n + b.size, 0),
      deleted: opts.apply ? garbage.length : 0,
      young: unreferenced.length - garbage.length,
    };
  }

  /** Whether retention re-hashes this checkpoint (see retentionVerify). */
  private fullVerify(m: Manifest): boolean {
    if (this.retentionVerify !== 'auto') return this.retentionVerify === 'full';
    return m.blobs.reduce((n, b) => n + b.size, 0) <= AUTO_FULL_VERIFY_MAX_BYTES;
  }

  private async blobSizes(): Promise<Map<string, number>> {
    const prefix = this.blobPrefix();
    const infos = await this.store.listDetailed(prefix);
    return new Map(infos.map((i) => [i.key.slice(prefix.length), i.size]));
  }

  private async verifyManifest(m: Manifest): Promise<VerifyResult> {
    const problems: VerifyResult['problems'] = [];
    await forEachLimit(m.blobs, Math.min(this.concurrency, 4), async (b) => {
      const problem = await this.checkBlob(b);
      if (problem) problems.push({ blob: b.name, reason: problem });
    });
    const order = new Map(m.blobs.map((b, i) => [b.name, i]));
    problems.sort((a, b) => order.get(a.blob!)! - order.get(b.blob!)!);
    return { id: m.id, ok: problems.length === 0, problems };
  }

  /**
   * Returns what is wrong with a stored blob, or null. Only a missing key is a problem; storage failures propagate.
   * A row chain's pieces are each checked, then the content they make up is.
   */
  private async checkBlob(b: ManifestBlob, keep?: (data: Uint8Array) => void): Promise<string | null> {
    const { data, problem } = await this.readBlob(b);
    if (problem) return problem;
    keep?.(data!);
    return null;
  }

  /**
   * One blob's content as stored, and what is wrong with it (null: it verifies). `data` is what could be read even
   * when it does not verify (null when a piece is missing or a chain cannot be applied). Storage failures propagate.
   */
  async readBlob(b: ManifestBlob): Promise<{ data: Uint8Array | null; problem: string | null }> {
    const reads = await Promise.all(storedPieces(b).map((piece) => this.readPiece(piece)));
    const pieces: Uint8Array[] = [];
    for (const [k, read] of reads.entries()) {
      const what = !b.rows ? '' : k === 0 ? 'row chain base: ' : `row patch ${k}: `;
      if (!read.data) return { data: null, problem: `${what}${read.problem}` };
      if (read.problem) return { data: b.rows ? null : read.data, problem: `${what}${read.problem}` };
      pieces.push(read.data);
    }
    if (!b.rows) return { data: pieces[0], problem: null };
    let data: Uint8Array;
    try {
      data = assemble(b, pieces);
    } catch (err) {
      return { data: null, problem: `row chain: ${(err as Error).message}` };
    }
    const sha = await sha256HexYielding(data);
    if (sha !== b.sha256)
      return { data, problem: `row chain gives sha256 ${sha.slice(0, 12)}…, expected ${b.sha256.slice(0, 12)}…` };
    return { data, problem: null };
  }

  /** One stored piece, read and checked against its address and size. */
  private async readPiece(p: {
    sha256: string;
    size: number;
  }): Promise<{ data: Uint8Array | null; problem: string | null }> {
    let data: Uint8Array;
    let sha: string;
    try {
      if (this.store.readHashing) {
        ({ data, sha256: sha } = await this.store.readHashing(this.blobKey(p.sha256)));
      } else {
        data = await this.store.read(this.blobKey(p.sha256));
        sha = data.byteLength === p.size ? await sha256HexYielding(data) : '';
      }
    } catch (err) {
      if (err instanceof CheckpointNotFoundError) return { data: null, problem: `missing (${this.blobKey(p.sha256)})` };
      throw err;
    }
    if (data.byteLength !== p.size)
      return { data, problem: `size mismatch: expected ${p.size} bytes, found ${data.byteLength}` };
    if (sha !== p.sha256)
      return { data, problem: `sha256 mismatch: expected ${p.sha256.slice(0, 12)}…, found ${sha.slice(0, 12)}…` };
    return { data, problem: null };
  }

  private async readEntries(): Promise<StoredManifest[]> {
    const prefix = `${this.runId}/manifests/`;
    const keys = (await this.store.list(prefix)).filter(
      (k) => k.endsWith('.json') && !k.slice(prefix.length).includes('/'),
    );
    const entries = await mapLimit(keys, this.concurrency, async (key): Promise<StoredManifest | null> => {
      const id = key.slice(prefix.length, -'.json'.length);
      let bytes: Uint8Array;
      try {
        bytes = await this.store.read(key);
      } catch (err) {
        if (err instanceof CheckpointNotFoundError) return null; // deleted since the listing
        throw err;
      }
      let manifest: Manifest;
      try {
        manifest = this.checkRun(decodeManifest(bytes, id));
      } catch (err) {
        return { id, manifest: null, problem: (err as Error).message, manifestBytes: bytes.byteLength };
      }
      const untrusted = this.signatureError(manifest);
      return { id, manifest, manifestBytes: bytes.byteLength, ...(untrusted ? { untrusted } : {}) };
    });
    return entries.filter((e): e is StoredManifest => e !== null);
  }

  private async pinnedIds(): Promise<Set<string>> {
    const prefix = `${this.runId}/pins/`;
    return new Set((await this.store.list(prefix)).map((k) => k.slice(prefix.length)));
  }

  private checkRun(m: Manifest): Manifest {
    // A manifest copied in from another run would otherwise pass for one of ours.
    if (m.runId !== this.runId) throw new Error(`manifest belongs to run ${m.runId}, not ${this.runId}`);
    return m;
  }

  /** With signing on, why this (intact) manifest is refused; null when it is signed by one of our keys. */
  private signatureError(m: Manifest): CheckpointSignatureError | null {
    const p = this.keys?.problem(m);
    return p ? new CheckpointSignatureError(this.runId, m.id, p.kind, p.text) : null;
  }

  private assertId(id: string): void {
    if (typeof id !== 'string' || !CHECKPOINT_ID.test(id))
      throw new CheckpointNotFoundError(String(id), `not a checkpoint id: ${JSON.stringify(id)}`);
  }
}

/** A blob as commit holds it: its own copy of the bytes (or the caller's, handed over). */
type BlobCopy = { name: string; dtype: string; shape: number[]; data: Uint8Array; changes?: BlobInput['changes'] };

const describe = (b: BlobCopy, sha256: string): ManifestBlob => ({
  name: b.name,
  dtype: b.dtype,
  shape: b.shape,
  sha256,
  size: b.data.byteLength,
});

/** A real copy: Buffer#slice (a Uint8Array subclass) would return a view of the caller's memory. */
function copyBytes(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.byteLength);
  out.set(data);
  return out;
}

function stepOf(e: StoredManifest): number {
  return e.manifest ? e.manifest.step : stepFromId(e.id);
}

/**
 * Runs fn over items with at most `limit` in flight (p-limit); after the first failure nothing new starts, the calls
 * in flight settle, then the first error is thrown (so no write is left running behind a failed commit).
 */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const run = pLimit(Math.max(1, limit));
  let firstError: { err: unknown } | null = null;
  const results = await Promise.all(
    items.map((item) =>
      run(async (): Promise<R | undefined> => {
        if (firstError) return undefined;
        try {
          return await fn(item);
        } catch (err) {
          firstError ??= { err };
          return undefined;
        }
      }),
    ),
  );
  if (firstError) throw (firstError as { err: unknown }).err;
  return results as R[];
}

async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  await mapLimit(items, limit, fn);
}
