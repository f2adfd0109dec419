// The numerics version: which gradient math a run computes with. Two versions of the math give different float32
// results on the same backend, so a run keeps the version it started with (recorded in every checkpoint's training
// state as `numerics`) and a restore under another version is refused unless the spec accepts it.
//
//   1  portable: conv gradients as forward convolutions with explicit transposes, matMul gradients through explicit
//      transposes (the same ops on every backend). Every checkpoint written before the field existed is version 1.
//   2  native gradients: conv gradients by the backend's own Conv2DBackpropInput/Filter kernels (oneDNN on the
//      tensorflow backend), TensorFlow's ReluGrad for relu and oneDNN's max pooling (tensorflow only), matMul
//      gradients by transposed matMuls, and Adam's update computed on the host (float64 intermediates, float32
//      storage; WebAssembly SIMD or JavaScript, the same bits: training/wasm/adam.ts) instead of 12 backend ops per
//      weight. The tensorflow backend's default: about 40% less CPU per
//      mnist-cnn step there; on wasm the conv gradients are slower (tfjs's Conv2DBackpropInput is a plain loop), so
//      wasm and cpu stay on 1.
//
// New runs take the backend's default; a restore continues with the checkpoint's own version when the backend
// computes it (restoreNumerics), so nothing in flight changes math or is refused when the default changes.
import type { RunSpec } from '../spec/types';

export type NumericsVersion = 1 | 2;

export const NUMERICS_VERSIONS: readonly NumericsVersion[] = [1, 2];

export const NUMERICS_DESCRIPTIONS: Readonly<Record<NumericsVersion, string>> = {
  1: 'portable: conv gradients as forward convolutions',
  2: "native: the backend's conv and relu gradient kernels, Adam on the host",
};

/** Overrides the backend's default numerics version for new runs and restores in this process (1 or 2). */
export const NUMERICS_ENV_VAR = 'DURABLE_TRAIN_NUMERICS';

/** What a checkpoint without the field was computed with. */
export const LEGACY_NUMERICS: NumericsVersion = 1;

export function describeNumerics(v: NumericsVersion): string {
  return `numerics ${v} (${NUMERICS_DESCRIPTIONS[v]})`;
}

function parseNumerics(raw: unknown, what: string): NumericsVersion {
  const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (n === 1 || n === 2) return n;
  throw new Error(`${what} must be one of ${NUMERICS_VERSIONS.join(', ')}, got ${JSON.stringify(raw)}`);
}

/** The version this process computes with on `backend`: DURABLE_TRAIN_NUMERICS if set, else 2 on tensorflow, else 1. */
export function defaultNumerics(backend: string): NumericsVersion {
  const env = process.env[NUMERICS_ENV_VAR];
  if (env !== undefined && env.trim() !== '') return parseNumerics(env, NUMERICS_ENV_VAR);
  return backend === 'tensorflow' ? 2 : 1;
}

/** The versions a backend computes: both on tensorflow (its kernels and the portable ops), only 1 elsewhere. */
export function numericsOf(backend: string): readonly NumericsVersion[] {
  return backend === 'tensorflow' ? [1, 2] : [1];
}

/**
 * The version a restore computes with: DURABLE_TRAIN_NUMERICS when set (an operator's explicit choice); else the
 * checkpoint's own when this backend computes it, so a run resumes exactly whatever this process's default for new
 * runs (a tensorflow run started before numerics 2 goes on with numerics 1); else this backend's default, a change
 * the guard refuses unless the spec accepts it.
 */
export function restoreNumerics(recorded: NumericsVersion, backend: string): NumericsVersion {
  const env = process.env[NUMERICS_ENV_VAR];
  if (env !== undefined && env.trim() !== '') return parseNumerics(env, NUMERICS_ENV_VAR);
  return numericsOf(backend).includes(recorded) ? recorded : defaultNumerics(backend);
}

/** The version a checkpoint's training state records (absent: written before the field, so version 1). */
export function recordedNumerics(state: { numerics?: unknown }): NumericsVersion {
  return state.numerics === undefined ? LEGACY_NUMERICS : parseNumerics(state.numerics, 'snapshot state: numerics');
}

/**
 * Null when a checkpoint computed with `recorded` may continue under `current`; else why not. A change is accepted
 * knowingly with resume.allowNumericsChange, or with resume.allowBackendChange (which accepts any change of math).
 */
export function numericsChangeRefusal(
  recorded: NumericsVersion,
  current: NumericsVersion,
  spec: Pick<RunSpec, 'resume'>,
): string | null {
  if (recorded === current || spec.resume?.allowNumericsChange || spec.resume?.allowBackendChange) return null;
  return (
    `it was computed with ${describeNumerics(recorded)}, this worker computes with ${describeNumerics(current)}; ` +
    `results would not be bit-identical. Set resume.allowNumericsChange to continue with numerics ${current}, ` +
    `or run a worker with ${NUMERICS_ENV_VAR}=${recorded}`
  );
}

/**
 * The version a restore of a snapshot whose training state is `state` computes with on `backend` (`forced` when the
 * caller chose one), and why it may not continue there, or null: the one rule the trainer and the chunk activity's
 * early guard both apply. Throws when the state's field is malformed.
 */
export function restoreDecision(
  state: { numerics?: unknown },
  backend: string,
  spec: Pick<RunSpec, 'resume'>,
  forced?: NumericsVersion,
): { numerics: NumericsVersion; refusal: string | null } {
  const recorded = recordedNumerics(state);
  const numerics = forced ?? restoreNumerics(recorded, backend);
  return { numerics, refusal: numericsChangeRefusal(recorded, numerics, spec) };
}
