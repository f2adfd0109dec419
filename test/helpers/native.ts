// The native TensorFlow backend for the tests that need it: built on demand (npm run setup:native, against
// TensorFlow's PyPI wheel) the first time one asks, so a fresh clone runs them instead of skipping.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { privateTfjsNodeDir, TFJS_NODE_DIR_ENV_VAR } from '../../training/backend';

const PROJECT_ROOT = path.resolve(__dirname, '..', '..', '..');

/** Whether a tfjs-node can be loaded: a normally installed one, or the private build of setup:native. */
export function nativeBuildPresent(): boolean {
  try {
    require.resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return privateTfjsNodeDir() !== null;
  }
}

/**
 * Builds the native backend when it is absent, and brings setup:native's private build up to date when it is older
 * than this checkout's script asks for (the script returns at once when it is current); returns why it cannot be had
 * here, or null.
 */
export function ensureNativeBuild(): string | null {
  try {
    require.resolve('@tensorflow/tfjs-node');
    return null; // a normally installed tfjs-node: not ours to rebuild
  } catch {
    // absent, or setup:native's private build
  }
  const r = spawnSync('bash', [path.join(PROJECT_ROOT, 'scripts', 'setup-native.sh')], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: 1_500_000,
  });
  if (r.status === 0 && nativeBuildPresent()) return null;
  if (r.status === 0) return `npm run setup:native succeeded, yet no tfjs-node is found (${TFJS_NODE_DIR_ENV_VAR}?)`;
  return `npm run setup:native failed (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}): ${(r.stderr ?? '').trim().slice(-1500)}`;
}

/** The loud line a test prints before it skips because the native build cannot be done on this machine. */
export function loudNativeSkip(what: string, why: string): string {
  return (
    `\n${'!'.repeat(100)}\n!!! SKIPPING ${what}: the native build cannot be done on this machine.\n` +
    `!!! ${why.replace(/\n/g, '\n!!! ')}\n${'!'.repeat(100)}\n`
  );
}
