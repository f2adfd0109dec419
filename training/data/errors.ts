import { DurableTrainError } from '../../spec/errors';
/** Bad dataset spec or data file: not worth retrying. The message starts with the spec field it concerns. */
export class DatasetError extends DurableTrainError {
  readonly code = 'invalid' as const;

  override readonly name = 'DatasetError';
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${field}: ${detail}`);
  }
}
