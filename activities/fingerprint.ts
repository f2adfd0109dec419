import { createHash } from 'node:crypto';

/** JSON with object keys sorted, so equal values always hash equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

export const sha256Hex = (s: string | Uint8Array): string => createHash('sha256').update(s).digest('hex');

/** What must not change for a run to continue its own checkpoints (epochs and retention may change). */
export function specHash(spec: object): string {
  return sha256Hex(canonicalJson(spec));
}
