// The persist thread's O_DIRECT blob writes (storage/direct-write.ts): the file holds the blob's bytes and the hash
// fed along is the blob's sha256, whether the blob is a plain array (through the staging buffer), whole pages of shared
// memory at a page offset (the optimizer's lent arrays, written from where they are), a tail past the last whole page,
// or shared memory at an offset the device refuses (staged). Where this machine's temp directory takes no O_DIRECT
// (tmpfs), writeDirect says so (false) and the buffered write is the one used; then only that is asserted.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeDirect } from '../../storage/direct-write';

describe('O_DIRECT blob writes', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-direct-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const SLICE = 1 << 20;
  // A wasm module's shared memory, as the optimizer's arrays live in (its base is page-aligned).
  const { Memory } = (
    globalThis as unknown as { WebAssembly: { Memory: new (d: object) => { buffer: SharedArrayBuffer } } }
  ).WebAssembly;
  const memory = new Memory({ initial: 64, maximum: 64, shared: true });
  const all = new Uint8Array(memory.buffer);
  for (let i = 0; i < all.length; i++) all[i] = (i * 2654435761) >>> 24;
  const plain = new Uint8Array(3 * SLICE + 12_345).map((_, i) => (i * 40503) & 255);

  const cases: Array<[string, Uint8Array]> = [
    ['a plain array', plain],
    ['whole pages of shared memory at a page', new Uint8Array(memory.buffer, 4096, 3 * SLICE)],
    ['shared memory at a page, with a tail', new Uint8Array(memory.buffer, 8192, 2 * SLICE + 100)],
    ['shared memory off a page', new Uint8Array(memory.buffer, 16, SLICE + 4096)],
  ];
  cases.forEach(([what, data], i) => {
    it(`writes ${what}: the file is the blob, the hash its sha256`, () => {
      const file = path.join(dir, `blob-${i}`);
      const hash = createHash('sha256');
      if (!writeDirect(file, data, hash, SLICE)) {
        assert.ok(!fs.existsSync(file) || fs.statSync(file).size === 0, 'nothing written that stays');
        return; // this temp directory takes no O_DIRECT: the store writes buffered
      }
      assert.ok(fs.readFileSync(file).equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength)));
      assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
    });
  });
});
