// Local-filesystem store. Every file appears under its final name only complete and fsynced (temp + rename),
// and the manifest rename is preceded by an fsync of every directory an earlier blob rename touched, so a
// power cut can never leave a durable manifest pointing at blobs that are not.
//
// Errors: a key missing below a healthy root is CheckpointNotFoundError. Every other failure is
// StorageUnavailableError, including ENOENT/ENOTDIR when the root itself, or the key's top-level directory (the
// run's), is missing or is not a directory: an unmounted volume or a directory replaced by a file is the storage
// failing, not the checkpoints being gone.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  assertKey,
  CheckpointConflictError,
  CheckpointNotFoundError,
  fsUnavailable,
  isSystemError,
  TEMP_PREFIX,
  type CheckpointStore,
  type StoredObject,
  type StoredObjectInfo,
  type WriteAtomicOptions,
} from './interface';
import type { StorageLocation } from './url';
import { writeDirect } from './direct-write';

const isCode = (err: unknown, ...codes: string[]) => codes.includes((err as NodeJS.ErrnoException)?.code ?? '');

/**
 * Streaming slice: the hash of one slice runs on this thread while the libuv pool writes (or reads) the next, so
 * sha256 and disk I/O overlap instead of adding up. 4 MiB keeps each synchronous hash step to a few ms.
 */
const SLICE = 4 << 20;

/** Blobs from this size on are written with O_DIRECT when direct writes are on (smaller ones gain nothing). */
const DIRECT_MIN_BYTES = 1 << 20;

export class FsCheckpointStore implements CheckpointStore {
  readonly url: string;
  readonly readsSharedMemory = true;
  readonly root: string;
  /** Directories whose entries changed (renames, mkdirs) and are not yet fsynced. */
  private readonly dirtyDirs = new Set<string>();
  private directWrites = false;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.url = `file://${this.root}`;
  }

  /**
   * Writes large content-addressed blobs with O_DIRECT, synchronously, on this thread: for the checkpoint persist
   * thread, whose store this is (see direct-write.ts). Not for a store on a thread that must stay responsive.
   */
  useDirectWrites(): void {
    this.directWrites = true;
  }

  private pathOf(key: string): string {
    assertKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  writeBlob(key: string, data: Uint8Array): Promise<void> {
    return this.guard('write', key, async () => {
      const file = this.pathOf(key);
      const st = await statOrNull(file);
      if (st?.isFile() && st.size === data.byteLength) {
        const existing = await fsp.readFile(file);
        if (Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(existing)) {
          // Reused: refresh its time so blob GC treats it as fresh while this commit is in flight.
          const now = new Date();
          await fsp.utimes(file, now, now);
          return;
        }
      }
      // Different bytes under a content address means a damaged copy: replace it.
      await this.writeFileAtomic(file, data, false);
    });
  }

  /**
   * Writes `data` to `<prefix><sha256 of data>` in one pass: each slice is hashed here while the pool writes it,
   * then the temp file is fsynced and renamed to its content address (replacing any older copy, which holds the
   * same bytes or is damaged). Durable before the next writeAtomic, like writeBlob. Returns the sha256. With direct
   * writes on (`useDirectWrites`), a blob of 1 MiB or more is written with O_DIRECT where the filesystem takes it.
   */
  writeContentAddressed(prefix: string, data: Uint8Array): Promise<string> {
    return this.guard('write', prefix, async () => {
      const dir = path.dirname(this.pathOf(`${prefix}0`));
      await this.ensureDir(dir);
      const direct = this.directWrites && data.byteLength >= DIRECT_MIN_BYTES;
      return (
        (direct && (await this.placeBlob(dir, (tmp, hash) => writeDirect(tmp, data, hash, SLICE)))) ||
        (await this.placeBlob(dir, (tmp, hash) => writeHashing(tmp, data, hash)))!
      );
    });
  }

  /**
   * Writes a blob into a new temp file of `dir` with `write` (which feeds every byte to the hash and fsyncs), then
   * renames it to its sha256. null (and no temp file left) when `write` says it could not.
   */
  private async placeBlob(
    dir: string,
    write: (tmp: string, hash: Hash) => boolean | Promise<boolean>,
  ): Promise<string | null> {
    const tmp = tempPath(dir, 'blob');
    const hash = createHash('sha256');
    let renamed = false;
    try {
      if (!(await write(tmp, hash))) return null;
      const sha256 = hash.digest('hex');
      await fsp.rename(tmp, path.join(dir, sha256));
      renamed = true;
      this.dirtyDirs.add(dir);
      return sha256;
    } finally {
      if (!renamed) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /** Reads a whole object and its sha256 in one pass (each slice hashed while the pool reads the next). */
  readHashing(key: string): Promise<{ data: Uint8Array; sha256: string }> {
    return this.guard('read', key, async () => {
      const fh = await fsp.open(this.pathOf(key), 'r');
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw new CheckpointNotFoundError(key); // a directory where the key would be
        let data = new Uint8Array(st.size);
        const hash = createHash('sha256');
        let pending: Uint8Array | null = null;
        for (let off = 0; off < data.byteLength; off += SLICE) {
          const part = data.subarray(off, Math.min(off + SLICE, data.byteLength));
          const reading = readAll(fh, part, off);
          if (pending) hash.update(pending);
          const got = await reading;
          pending = part.subarray(0, got);
          if (got < part.byteLength) {
            data = data.subarray(0, off + got); // shrank since the stat: report what is there
            break;
          }
        }
        if (pending) hash.update(pending);
        return { data, sha256: hash.digest('hex') };
      } finally {
        await fh.close();
      }
    });
  }

  writeAtomic(key: string, data: Uint8Array, opts: WriteAtomicOptions = {}): Promise<void> {
    return this.guard('write', key, async () => {
      const file = this.pathOf(key);
      if (opts.ifAbsent && (await statOrNull(file))) {
        const existing = await fsp.readFile(file);
        if (Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(existing)) return;
        throw new CheckpointConflictError(key);
      }
      // Earlier blob renames must be durable before the commit point is.
      await this.syncDirtyDirs();
      await this.writeFileAtomic(file, data, true);
    });
  }

  read(key: string): Promise<Uint8Array> {
    return this.guard('read', key, async () => {
      const buf = await fsp.readFile(this.pathOf(key));
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    });
  }

  exists(key: string): Promise<boolean> {
    return this.guard('stat', key, async () => {
      const st = await statOrNull(this.pathOf(key));
      if (st) return st.isFile();
      await this.assertHealthy('stat', key);
      return false;
    });
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listDetailed(prefix)).map((o) => o.key);
  }

  listDetailed(prefix: string): Promise<StoredObjectInfo[]> {
    return this.guard('list', prefix, async () => {
      const out: StoredObjectInfo[] = [];
      await this.walk(prefix, false, async (key, file, name) => {
        if (name.startsWith(TEMP_PREFIX)) return;
        const st = await statOrNull(file);
        if (st?.isFile()) out.push({ key, size: st.size, mtimeMs: st.mtimeMs });
      });
      return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    });
  }

  sweepTemp(prefix: string, olderThanMs: number): Promise<number> {
    return this.guard('delete', prefix, async () => {
      let n = 0;
      const cutoff = Date.now() - olderThanMs;
      await this.walk(prefix, true, async (_key, file, name) => {
        if (!name.startsWith(TEMP_PREFIX)) return;
        const st = await statOrNull(file);
        if (st?.isFile() && st.mtimeMs <= cutoff) {
          await fsp.rm(file, { force: true });
          n++;
        }
      });
      return n;
    });
  }

  delete(key: string): Promise<void> {
    return this.guard('delete', key, async () => {
      const file = this.pathOf(key);
      try {
        await fsp.unlink(file);
      } catch (err) {
        if (!isCode(err, 'ENOENT', 'ENOTDIR')) throw err;
        await this.assertHealthy('delete', key);
        return;
      }
      // Deletions are ordered (manifests before their blobs): make each one durable before the next step.
      await fsyncDir(path.dirname(file));
    });
  }

  /**
   * Runs one operation and classifies what it throws: typed errors and programming errors pass; ENOENT/ENOTDIR/
   * EISDIR of a read is CheckpointNotFoundError when the store is healthy; every other system error is
   * StorageUnavailableError.
   */
  private async guard<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!isSystemError(err)) throw err;
      if (op === 'read' && isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) {
        await this.assertHealthy(op, key, err);
        throw new CheckpointNotFoundError(key);
      }
      throw fsUnavailable(this.url, op, key, err);
    }
  }

  /**
   * Throws StorageUnavailableError unless the root is a directory and the key's top-level directory (the run's)
   * is a directory or absent (a run with nothing stored yet). Called when a lookup found nothing, to tell a missing
   * key from a store that is not there.
   */
  private async assertHealthy(op: string, key: string, cause?: unknown): Promise<void> {
    const top = key.includes('/') ? key.slice(0, key.indexOf('/')) : '';
    const dirs = top ? [this.root, path.join(this.root, top)] : [this.root];
    for (const [i, dir] of dirs.entries()) {
      let isDir: boolean;
      try {
        isDir = (await fsp.stat(dir)).isDirectory();
      } catch (err) {
        if (i > 0 && isCode(err, 'ENOENT')) return;
        throw fsUnavailable(this.url, op, key, cause ?? err, {
          why: `${dir}: ${(err as Error).message}`,
          code: (err as NodeJS.ErrnoException).code,
        });
      }
      if (!isDir) {
        throw fsUnavailable(this.url, op, key, cause, {
          why: `${dir} is not a directory`,
          code: 'ENOTDIR',
        });
      }
    }
  }

  /** Visits files under the directory part of `prefix` whose key starts with `prefix`. */
  private async walk(
    prefix: string,
    includeTemp: boolean,
    visit: (key: string, file: string, name: string) => Promise<void>,
  ) {
    const cut = prefix.lastIndexOf('/');
    const dirKey = cut < 0 ? '' : prefix.slice(0, cut);
    if (dirKey) assertKey(dirKey);
    const recurse = async (dirPath: string, keyBase: string, first: boolean): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fsp.readdir(dirPath, { withFileTypes: true });
      } catch (err) {
        if (!isCode(err, 'ENOENT', 'ENOTDIR')) throw err;
        // Nothing under the prefix, or no store at all? Deeper directories vanish only by concurrent deletes.
        if (first) await this.assertHealthy('list', prefix, err);
        return;
      }
      for (const e of entries) {
        const key = keyBase ? `${keyBase}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(key + '/'))
            await recurse(path.join(dirPath, e.name), key, false);
        } else if (
          e.name.startsWith(TEMP_PREFIX) ? includeTemp && `${keyBase}/`.startsWith(prefix) : key.startsWith(prefix)
        ) {
          await visit(key, path.join(dirPath, e.name), e.name);
        }
      }
    };
    await recurse(dirKey ? path.join(this.root, ...dirKey.split('/')) : this.root, dirKey, true);
  }

  private async writeFileAtomic(file: string, data: Uint8Array, syncDirNow: boolean): Promise<void> {
    const dir = path.dirname(file);
    await this.ensureDir(dir);
    const tmp = tempPath(dir, path.basename(file));
    const fh = await fsp.open(tmp, 'wx', 0o644);
    let renamed = false;
    try {
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, file);
      renamed = true;
    } finally {
      // Never leave a temp file behind on error (and never mask the original error).
      if (!renamed) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
    if (syncDirNow) {
      await fsyncDir(dir);
      this.dirtyDirs.delete(dir);
    } else {
      this.dirtyDirs.add(dir);
    }
  }

  private async ensureDir(dir: string): Promise<void> {
    const first = await fsp.mkdir(dir, { recursive: true });
    if (!first) return;
    // New directories are entries in their parents: those parents need an fsync too.
    for (let d = dir; ; d = path.dirname(d)) {
      this.dirtyDirs.add(path.dirname(d));
      if (d === first || path.dirname(d) === d) break;
    }
  }

  private async syncDirtyDirs(): Promise<void> {
    // Deepest first, so a directory is durable before the entry that names it.
    const dirs = [...this.dirtyDirs].sort((a, b) => b.length - a.length);
    for (const d of dirs) {
      await fsyncDir(d);
      this.dirtyDirs.delete(d);
    }
  }
}

/** Writes `data` to the new file `tmp` a slice at a time, hashing each slice here while the pool writes it; fsyncs. */
async function writeHashing(tmp: string, data: Uint8Array, hash: Hash): Promise<boolean> {
  const fh = await fsp.open(tmp, 'wx', 0o644);
  try {
    for (let off = 0; off < data.byteLength; off += SLICE) {
      const part = data.subarray(off, Math.min(off + SLICE, data.byteLength));
      const written = writeAll(fh, part, off);
      hash.update(part);
      await written;
    }
    await fh.sync();
    return true;
  } finally {
    await fh.close();
  }
}

function tempPath(dir: string, base: string): string {
  return path.join(dir, `${TEMP_PREFIX}${base}.${process.pid}.${randomBytes(6).toString('hex')}`);
}

async function writeAll(fh: import('node:fs/promises').FileHandle, part: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < part.byteLength;) {
    const { bytesWritten } = await fh.write(part, done, part.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/** Fills `part` from `position`; returns the bytes read (fewer only at the end of the file). */
async function readAll(fh: import('node:fs/promises').FileHandle, part: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < part.byteLength) {
    const { bytesRead } = await fh.read(part, done, part.byteLength - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

async function statOrNull(file: string) {
  try {
    return await fsp.stat(file);
  } catch (err) {
    if (isCode(err, 'ENOENT', 'ENOTDIR')) return null;
    throw err;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let fh: import('node:fs/promises').FileHandle;
  try {
    fh = await fsp.open(dir, 'r');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return;
    throw err;
  }
  try {
    await fh.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory; the data files themselves are synced.
    if (!isCode(err, 'EINVAL', 'ENOTSUP', 'EISDIR', 'EBADF')) throw err;
  } finally {
    await fh.close();
  }
}

/** The store at file://PATH; a relative PATH resolves against `baseDir`. */
export function openFsStore(loc: StorageLocation & { kind: 'file' }, baseDir: string): FsCheckpointStore {
  return new FsCheckpointStore(path.resolve(baseDir, loc.path));
}

/**
 * The file at file://PATH (relative against `baseDir`) as a StoredObject: a missing file is CheckpointNotFoundError,
 * a directory StorageUnavailableError with code EISDIR, every other failure StorageUnavailableError with its errno.
 */
export function openFsObject(loc: StorageLocation & { kind: 'file' }, baseDir: string): StoredObject {
  const file = path.resolve(baseDir, loc.path);
  const url = `file://${file}`;
  const guard = async <T>(op: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (!isSystemError(err)) throw err;
      if (isCode(err, 'ENOENT', 'ENOTDIR')) throw new CheckpointNotFoundError(file, `not found: ${url}`);
      throw fsUnavailable(url, op, file, err);
    }
  };
  return {
    url,
    stat: () =>
      guard('stat', async () => {
        const st = await fsp.stat(file);
        if (st.isDirectory())
          throw Object.assign(new Error(`${file} is a directory`), { code: 'EISDIR', syscall: 'stat' });
        return { size: st.size, version: `${st.mtimeMs}:${st.ino}` };
      }),
    read: (limit) =>
      guard('read', async () => {
        if (limit === undefined) return new Uint8Array(await fsp.readFile(file));
        const fh = await fsp.open(file, 'r');
        try {
          const buf = new Uint8Array(limit);
          return buf.subarray(0, await readAll(fh, buf, 0));
        } finally {
          await fh.close();
        }
      }),
    stream: () => streamFile(file, url),
  };
}

/** A file's bytes in chunks, errors as openFsObject's (a missing file is CheckpointNotFoundError). */
async function* streamFile(file: string, url: string): AsyncGenerator<Uint8Array> {
  const rs = createReadStream(file, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of rs) yield chunk as Buffer;
  } catch (err) {
    if (!isSystemError(err)) throw err;
    if (isCode(err, 'ENOENT', 'ENOTDIR')) throw new CheckpointNotFoundError(file, `not found: ${url}`);
    throw fsUnavailable(url, 'read', file, err);
  } finally {
    rs.destroy();
  }
}
