// The native TensorFlow backend for the tests that need it: built by `npm run setup:test` (setup-native, against
// TensorFlow's PyPI wheel), found here; under CI=true a missing build fails the tests that need it.
import { privateTfjsNodeDir, TFJS_NODE_DIR_ENV_VAR } from '../../training/backend';

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
 * Why the native backend cannot be loaded here, or null when it can. The build itself is made by `npm run setup:test`
 * (scripts/setup.sh --test runs setup-native, which returns at once when the build is current), never by a test.
 */
export function nativeUnavailable(): string | null {
  if (nativeBuildPresent()) return null;
  return (
    `no tfjs-node is installed and setup:native's private build is absent (${TFJS_NODE_DIR_ENV_VAR} unset or empty): ` +
    'run `npm run setup:test` (or `npm run setup:native`; it needs g++, python3 and the PyPI and npm registries)'
  );
}

/**
 * For a `before` hook of tests that need the native backend: nothing when it can be loaded; otherwise, under CI=true
 * (where a skip would leave the suite green with no native coverage) the hook fails naming what is missing, and
 * elsewhere the tests are skipped with a loud line.
 */
export function requireNative(ctx: Mocha.Context, what: string): void {
  const why = nativeUnavailable();
  if (!why) return;
  if (process.env.CI === 'true') throw new Error(`${what} cannot run under CI=true: ${why}`);
  console.error(loudNativeSkip(what, why));
  ctx.skip();
}

/** The loud line a test prints before it skips because the native build cannot be done on this machine. */
export function loudNativeSkip(what: string, why: string): string {
  return (
    `\n${'!'.repeat(100)}\n!!! SKIPPING ${what}: the native build cannot be done on this machine.\n` +
    `!!! ${why.replace(/\n/g, '\n!!! ')}\n${'!'.repeat(100)}\n`
  );
}
