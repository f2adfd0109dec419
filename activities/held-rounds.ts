// Round checkpoints held in memory by a spare training process, so that a replica whose process dies restarts from
// memory rather than from the store: when a round's replicas start, the worker has its idle training processes read
// the round's global checkpoint (every blob verified as the store's restore does, the manifest's signature checked);
// the restart, which the worker gives to such a process, takes the blobs it needs from there once each blob's sha256
// is checked again against the manifest (memory is not trusted blindly: a bit flipped since is caught, and the replica
// then reads the store as usual).
import { sha256Hex, type CheckpointManager, type CheckpointRef, type Manifest } from '../checkpoint';
import type { RunSpec } from '../spec/types';

type Loaded = Awaited<ReturnType<CheckpointManager['load']>>;

/** How many rounds' checkpoints a process keeps (a run's current round, and one more run's or the next round's). */
const KEEP = 2;

export class HeldRounds {
  private readonly held = new Map<string, Promise<Loaded | null>>();
  private managerFor: ((spec: RunSpec, runId: string) => CheckpointManager) | null = null;

  /** The activities' checkpoint managers (createActivities binds them: the same stores, keys and caches). */
  bind(managerFor: (spec: RunSpec, runId: string) => CheckpointManager): void {
    this.managerFor = managerFor;
  }

  /** Starts reading `from` into memory (once per checkpoint; the oldest held goes beyond KEEP). */
  hold(spec: RunSpec, from: CheckpointRef): void {
    const key = keyOf(from);
    if (this.held.has(key) || !this.managerFor) return;
    let manager: CheckpointManager;
    try {
      manager = this.managerFor(spec, from.runId);
    } catch {
      return; // a spec whose storage cannot be opened: the replica itself says why
    }
    this.held.set(
      key,
      manager.load(from.id).catch(() => null),
    );
    for (const k of [...this.held.keys()].slice(0, Math.max(0, this.held.size - KEEP))) this.held.delete(k);
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
    const loaded = await this.held.get(keyOf(from));
    if (!loaded) return null;
    const full = loaded.manifest;
    const manifest = { ...full, blobs: full.blobs.filter((b) => wanted(b.name, full)) };
    const blobs = new Map<string, Uint8Array>();
    for (const b of manifest.blobs) {
      const bytes = loaded.blobs.get(b.name);
      if (!bytes || sha256Hex(bytes) !== b.sha256) {
        this.held.delete(keyOf(from));
        return null;
      }
      blobs.set(b.name, bytes);
    }
    return { manifest, blobs };
  }
}

/** A held round's key (the supervisor keeps which processes hold which by it). */
export const keyOf = (ref: CheckpointRef) => `${ref.runId}\n${ref.id}`;
