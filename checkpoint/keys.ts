// Key rules shared by the stores and the manager.

/** Temp files are named `.tmp.<name>.<pid>.<random>` beside their target; list() never shows them. */
export const TEMP_PREFIX = '.tmp.';

/** Rejects keys that could escape the store root or that name a temp file. */
export function assertKey(key: string): void {
  const parts = typeof key === 'string' ? key.split('/') : [];
  if (
    !parts.length ||
    parts.some((p) => p === '' || p === '.' || p === '..' || p.startsWith(TEMP_PREFIX) || p.includes('\\'))
  ) {
    throw new Error(`invalid store key ${JSON.stringify(key)}`);
  }
}
