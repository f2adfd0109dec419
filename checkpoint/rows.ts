// Row patches: incremental storage below tensor granularity. A tensor whose rows (along its first dimension) changed
// only here and there since the previous checkpoint (an embedding table trained on a few scattered ids, a fine-tune
// that moves a few rows) is stored as the previous checkpoint's chain plus one patch holding just those rows. A chain
// is bounded: after MAX_PATCHES patches, or once its patches would add up to more than PATCH_BUDGET times the base,
// the next change is stored whole again (a new base), so a restore reads at most 1 + PATCH_BUDGET times the tensor,
// in at most MAX_PATCHES + 1 pieces. The budget trades restore reads for stored bytes: with 9.5% of the rows changed
// per checkpoint, 1.5 gives a base every 16 checkpoints (about 0.14 of a whole checkpoint stored per checkpoint over a
// chain), where 1.0 gave one every 11 (about 0.17).
//
// Patch bytes (little-endian): "DTRP", u32 version 1, u32 rowBytes, u32 count, count u32 row indices (strictly
// ascending), then count rows of rowBytes bytes. Every piece is content-addressed like any blob, and the applied
// result is checked against the blob's own sha256: a restored tensor is bitwise the one saved, or it is damage.
import type { BlobInput, ManifestBlob, RowChain, StoredPiece } from './types';

/** At most this many patches follow a base. */
export const MAX_PATCHES = 16;
/** A chain's patches together stay within this many times its base's size. */
export const PATCH_BUDGET = 1.5;

const MAGIC = 0x50525444; // "DTRP" read as a little-endian u32
const HEADER = 16;

/** The stored pieces of a blob, in the order they apply: itself, or its chain's base and patches. */
export function storedPieces(b: ManifestBlob): StoredPiece[] {
  return b.rows ? [b.rows.base, ...b.rows.patches] : [{ sha256: b.sha256, size: b.size }];
}

/** The patch of `rows` of `data` (rows of `rowBytes` bytes each). */
export function encodePatch(data: Uint8Array, rowBytes: number, rows: Uint32Array): Uint8Array {
  const out = new Uint8Array(HEADER + rows.length * (4 + rowBytes));
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, 1, true);
  view.setUint32(8, rowBytes, true);
  view.setUint32(12, rows.length, true);
  let at = HEADER;
  for (const r of rows) {
    view.setUint32(at, r, true);
    at += 4;
  }
  for (const r of rows) {
    out.set(data.subarray(r * rowBytes, (r + 1) * rowBytes), at);
    at += rowBytes;
  }
  return out;
}

/** Applies a patch to `into` in place (a tensor of `size` bytes in rows of the patch's width); throws on a malformed one. */
export function applyPatch(into: Uint8Array, patch: Uint8Array): void {
  if (patch.byteLength < HEADER) throw new Error(`row patch of ${patch.byteLength} bytes is shorter than its header`);
  const view = new DataView(patch.buffer, patch.byteOffset, patch.byteLength);
  if (view.getUint32(0, true) !== MAGIC || view.getUint32(4, true) !== 1)
    throw new Error('not a row patch (version 1)');
  const rowBytes = view.getUint32(8, true);
  const count = view.getUint32(12, true);
  if (rowBytes === 0 || into.byteLength % rowBytes !== 0)
    throw new Error(`row patch rows of ${rowBytes} bytes do not divide a ${into.byteLength}-byte tensor`);
  if (patch.byteLength !== HEADER + count * (4 + rowBytes))
    throw new Error(
      `row patch of ${count} rows should be ${HEADER + count * (4 + rowBytes)} bytes, is ${patch.byteLength}`,
    );
  const rows = into.byteLength / rowBytes;
  let data = HEADER + 4 * count;
  let prev = -1;
  for (let k = 0; k < count; k++) {
    const r = view.getUint32(HEADER + 4 * k, true);
    if (r <= prev || r >= rows) throw new Error(`row patch names row ${r} out of order or past ${rows} rows`);
    prev = r;
    into.set(patch.subarray(data, data + rowBytes), r * rowBytes);
    data += rowBytes;
  }
}

/** A blob's content from its pieces' bytes (verified by the caller), in storedPieces order. */
export function assemble(b: ManifestBlob, pieces: Uint8Array[]): Uint8Array {
  if (!b.rows) return pieces[0];
  const out = new Uint8Array(b.size);
  if (pieces[0].byteLength !== b.size)
    throw new Error(`row chain base is ${pieces[0].byteLength} bytes, the blob ${b.size}`);
  out.set(pieces[0]);
  for (const p of pieces.slice(1)) applyPatch(out, p);
  return out;
}

/** What the commit does with one blob that comes with `changes`. */
export type RowPlan =
  /** Unchanged since the previous checkpoint: its entry (and chain) as it is, nothing written. */
  | { kind: 'same'; entry: ManifestBlob }
  /** Only the patch is written; the entry names the previous chain plus it. */
  | { kind: 'patch'; patch: Uint8Array; chain: RowChain }
  /** Stored whole (a new base). */
  | { kind: 'whole' };

/**
 * How to store `b`, whose content hashes to `sha256`, given the previous checkpoint's entry of the same name: the
 * entry itself when nothing changed, a patch of the changed rows while the chain stays bounded, else whole.
 */
export function planRows(b: BlobInput, sha256: string, previous: ManifestBlob | undefined): RowPlan {
  const changes = b.changes;
  if (!changes || !previous || previous.sha256 !== changes.from) return { kind: 'whole' };
  if (previous.dtype !== b.dtype || previous.size !== b.data.byteLength) return { kind: 'whole' };
  if (previous.shape.length !== b.shape.length || previous.shape.some((d, i) => d !== b.shape[i]))
    return { kind: 'whole' };
  if (sha256 === previous.sha256) return { kind: 'same', entry: previous };
  const rows = b.shape[0] ?? 0;
  if (b.shape.length < 2 || rows < 2 || changes.rows.length === 0) return { kind: 'whole' };
  const rowBytes = b.data.byteLength / rows;
  const chain: RowChain = previous.rows ?? { base: { sha256: previous.sha256, size: previous.size }, patches: [] };
  const patchBytes = HEADER + changes.rows.length * (4 + rowBytes);
  const chained = chain.patches.reduce((n, p) => n + p.size, 0);
  if (chain.patches.length >= MAX_PATCHES || chained + patchBytes > PATCH_BUDGET * chain.base.size)
    return { kind: 'whole' };
  return { kind: 'patch', patch: encodePatch(b.data, rowBytes, changes.rows), chain };
}

/** Checks a stored `rows` field; returns the chain or throws with the reason. */
export function parseChain(
  raw: unknown,
  blob: string,
  parsePiece: (v: unknown, what: string) => StoredPiece,
): RowChain {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${blob}: rows is not an object`);
  const { base, patches } = raw as Record<string, unknown>;
  if (!Array.isArray(patches) || patches.length === 0 || patches.length > MAX_PATCHES)
    throw new Error(`${blob}: rows.patches is not a list of 1 to ${MAX_PATCHES} pieces`);
  return {
    base: parsePiece(base, `${blob}: rows.base`),
    patches: patches.map((p, i) => parsePiece(p, `${blob}: rows.patches[${i}]`)),
  };
}
