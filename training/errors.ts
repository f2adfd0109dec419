// Errors of a run's configuration (its model or data do not fit): retrying cannot help, the spec must change.
import { DurableTrainError, errorCodeOf } from '../spec/errors';
import { firstNonFiniteF32 } from './wasm/finite';

export class ConfigError extends DurableTrainError {
  readonly code = 'invalid' as const;

  override readonly name = 'ConfigError';
}

/**
 * Whether `err` says the spec's model or data cannot work (as opposed to a failure that may pass): an `invalid`
 * durable-train error, or one of those classes by name (thrown by another copy of this package, as a registered
 * model's dependency may be).
 */
export const isConfigError = (err: unknown): boolean =>
  errorCodeOf(err) === 'invalid' ||
  (err instanceof Error &&
    ['ConfigError', 'DatasetError', 'LayerError', 'RegistryError', 'PreflightError', 'ModelFitError'].includes(
      err.name,
    ));

/**
 * A loss, an evaluation or a weight that is NaN or infinite: the updates diverged. Retrying recomputes the same
 * numbers (training is exact), so this is never worth a retry; the message names the step, the learning rate and the
 * likely cause.
 */
export class NonFiniteError extends DurableTrainError {
  readonly code = 'diverged' as const;

  override readonly name = 'NonFiniteError';
  constructor(
    readonly step: number,
    readonly learningRate: number,
    readonly what: string,
  ) {
    super(
      `${what} at step ${step} (learning rate ${learningRate}): training diverged. Likely cause: a learning rate too ` +
        'high for this model and data, or unscaled inputs or targets (values far from 1). The newest checkpoint is the ' +
        'last one with finite weights: fork from it with a lower learning rate, or scale the data',
    );
  }
}

/** Throws NonFiniteError naming the first float32 blob value that is NaN or infinite (a snapshot that diverged). */
export function assertFiniteBlobs(
  blobs: ReadonlyArray<{ name: string; dtype: string; data: Uint8Array }>,
  step: number,
  learningRate: number,
): void {
  for (const t of blobs) {
    if (t.dtype !== 'float32') continue;
    const at = firstNonFiniteF32(t.data);
    if (at >= 0) {
      const value = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).readFloatLE(at * 4);
      throw new NonFiniteError(step, learningRate, `${t.name}[${at}] is ${value}`);
    }
  }
}

/** Where the first NaN or infinity of `values` is, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}

/** Whether a float64 number survives conversion to float32 as a finite number (1e39 does not: it becomes Infinity). */
export const fitsFloat32 = (v: number): boolean => Number.isFinite(Math.fround(v));
