/** Bad dataset spec or data file: not worth retrying. The message starts with the spec field it concerns. */
export class DatasetError extends Error {
  override readonly name = 'DatasetError';
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${field}: ${detail}`);
  }
}
