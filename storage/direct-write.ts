// Writing a large blob with O_DIRECT: from a staging buffer straight to the device, not through the page cache. On
// this project's machines a buffered write of 290 MB into a new file cost about 1 s of CPU (the kernel allocating
// and filling fresh page-cache pages), O_DIRECT about 0.1 s: the difference is training time when checkpoints of a
// large model persist every few seconds beside training. Used by the persist thread's store only (synchronous: the
// thread has nothing else to do); anything O_DIRECT cannot do here (tmpfs, an alignment the device refuses) falls
// back to the buffered write.
import { closeSync, constants, fsyncSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import type { Hash } from 'node:crypto';

const BLOCK = 4096;

/**
 * The staging buffer: an offset into a larger allocation at which the device accepts direct writes (JavaScript
 * cannot ask for an address, so the first write that succeeds finds it). null once it proved impossible here.
 */
let stage: Uint8Array | null | undefined;

function findStage(fd: number, slice: number): Uint8Array | null {
  const raw = new Uint8Array(slice + 2 * BLOCK);
  for (let off = 0; off < BLOCK; off += 16) {
    try {
      writeSync(fd, raw, off, BLOCK, 0);
      return raw.subarray(off, off + slice + BLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    }
  }
  return null;
}

const isEinval = (err: unknown) => (err as NodeJS.ErrnoException)?.code === 'EINVAL';

/**
 * Writes `data` to the new file `tmp` with O_DIRECT, `slice` bytes at a time, feeding each slice to `hash`, then
 * fsyncs it. Returns false, having written nothing that stays (the caller removes `tmp`), when the filesystem or
 * device does not take direct writes; other errors are thrown.
 */
export function writeDirect(tmp: string, data: Uint8Array, hash: Hash, slice: number): boolean {
  if (stage === null) return false;
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT, 0o644);
  } catch (err) {
    if (isEinval(err)) return false;
    throw err;
  }
  try {
    // (Found again for a larger slice than the one it was found for.)
    if (stage === undefined || stage.byteLength < slice + BLOCK) stage = findStage(fd, slice);
    if (!stage) return false;
    // Whole pages of shared memory at a page offset (the optimizer's lent arrays: training/wasm/adam.ts; a module's
    // memory starts at a page) go to the device from where they are, without the copy into the stage; where the
    // device refuses that, the stage as usual.
    let inPlace = data.buffer instanceof SharedArrayBuffer && data.byteOffset % BLOCK === 0;
    for (let off = 0; off < data.byteLength; off += slice) {
      const part = data.subarray(off, Math.min(off + slice, data.byteLength));
      hash.update(part);
      if (inPlace && part.byteLength % BLOCK === 0) {
        try {
          for (let done = 0; done < part.byteLength;)
            done += writeSync(fd, part, done, part.byteLength - done, off + done);
          continue;
        } catch (err) {
          if (!isEinval(err)) throw err;
          inPlace = false;
        }
      }
      stage.set(part);
      const len = Math.ceil(part.byteLength / BLOCK) * BLOCK;
      for (let done = 0; done < len;) done += writeSync(fd, stage, done, len - done, off + done);
    }
    ftruncateSync(fd, data.byteLength); // the last block was written whole
    fsyncSync(fd);
    return true;
  } catch (err) {
    if (isEinval(err)) return false;
    throw err;
  } finally {
    closeSync(fd);
  }
}
