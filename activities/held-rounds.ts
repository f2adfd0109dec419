// Round checkpoints held in memory by a spare training process, so that a replica whose process dies restarts from
// memory rather than from the store: when a round's replicas start, the worker has its idle training processes read
// the round's global checkpoint (every blob verified as the store's restore does, the manifest's signature checked);
// the restart, which the worker gives to such a process, takes the blobs it needs from there once each blob's sha256
// is checked again against the manifest (memory is not trusted blindly: a bit flipped since is caught, and the replica
// then reads the store as usual). A held checkpoint unused for HELD_IDLE_MS is let go.
import { sha256Hex, type CheckpointManager, type CheckpointRef, type Manifest } from '../checkpoint';
import type { RunSpec } from '../spec/types';

type Loaded = Awaited<ReturnType<CheckpointManager['load']>>;

/** How many rounds' checkpoints a process keeps (a run's current round, and one more run's or the next round's). */
export const KEEP_ROUNDS = 2;

/**
 * How long a held checkpoint stays unused (neither held again nor taken) before it is let go: a distributed run that
 * ended, or moved to other workers, does not keep twice its checkpoint's size in a spare's memory for good. A round
 * longer than this restarts from the store instead, as without a held copy.
 */
export const HELD_IDLE_MS = 10 * 60_000;

interface Held {
  loaded: Promise<Loaded | null>;
  timer: NodeJS.Timeout;
}

export class HeldRounds {
  private readonly held = new Map<string, Held>();
  private managerFor: ((spec: RunSpec, runId: string) => CheckpointManager) | null = null;

  constructor(private readonly idleMs = HELD_IDLE_MS) {}

  /** The activities' checkpoint managers (createActivities binds them: the same stores, keys and caches). */
  bind(managerFor: (spec: RunSpec, runId: string) => CheckpointManager): void {
    this.managerFor = managerFor;
  }

  /** Starts reading `from` into memory (once per checkpoint; the oldest held goes beyond KEEP_ROUNDS). */
  hold(spec: RunSpec, from: CheckpointRef): void {
    const key = keyOf(from);
    const had = this.held.get(key);
    if (had) return this.touch(key, had);
    if (!this.managerFor) return;
    let manager: CheckpointManager;
    try {
      manager = this.managerFor(spec, from.runId);
    } catch {
      return; // a spec whose storage cannot be opened: the replica itself says why
    }
    this.held.set(key, { loaded: manager.load(from.id).catch(() => null), timer: this.expiry(key) });
    for (const k of [...this.held.keys()].slice(0, Math.max(0, this.held.size - KEEP_ROUNDS))) this.drop(k);
  }

  /** Used again: its idle time starts over, and it is the newest held (the last to go beyond KEEP_ROUNDS). */
  private touch(key: string, h: Held): void {
    clearTimeout(h.timer);
    h.timer = this.expiry(key);
    this.held.delete(key);
    this.held.set(key, h);
  }

  private expiry(key: string): NodeJS.Timeout {
    const timer = setTimeout(() => this.drop(key), this.idleMs);
    timer.unref();
    return timer;
  }

  private drop(key: string): void {
    const h = this.held.get(key);
    if (h) clearTimeout(h.timer);
    this.held.delete(key);
  }

  /** Whether `from` is held (or being read). */
  has(from: CheckpointRef): boolean {
    return this.held.has(keyOf(from));
  }

  /**
   * The held checkpoint `from` with only the blobs `wanted` keeps (as CheckpointManager.load's `only`), each checked
   * against the manifest's sha256; null when it is not held, could not be read, or a blob no longer matches.
   */
  async take(from: CheckpointRef, wanted: (name: string, m: Manifest) => boolean): Promise<Loaded | null> {
    const key = keyOf(from);
    const h = this.held.get(key);
    if (!h) return null;
    this.touch(key, h);
    const loaded = await h.loaded;
    if (!loaded) return null;
    const full = loaded.manifest;
    const manifest = { ...full, blobs: full.blobs.filter((b) => wanted(b.name, full)) };
    const blobs = new Map<string, Uint8Array>();
    for (const b of manifest.blobs) {
      const bytes = loaded.blobs.get(b.name);
      if (!bytes || sha256Hex(bytes) !== b.sha256) {
        this.drop(key);
        return null;
      }
      blobs.set(b.name, bytes);
    }
    return { manifest, blobs };
  }
}

/** A held round's key (the supervisor keeps which processes hold which by it). */
export const keyOf = (ref: CheckpointRef) => `${ref.runId}\n${ref.id}`;
