// Errors of a run's configuration (its model or data do not fit): retrying cannot help, the spec must change.

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Whether `err` says the spec's model or data cannot work (as opposed to a failure that may pass). */
export const isConfigError = (err: unknown): boolean =>
  err instanceof Error &&
  ['ConfigError', 'DatasetError', 'LayerError', 'RegistryError', 'PreflightError'].includes(err.name);
