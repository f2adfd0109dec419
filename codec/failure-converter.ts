// Failure messages and stacks encrypted like every payload: with codec keys set, the client and the worker (its
// workflows and activities) move a failure's message and stack into its encoded attributes, a payload the codec
// encrypts, so a failure naming a path, a column or a value is unreadable in the history without the key. The client
// decodes them back (status); health decodes the raw failures it reads (decodeFailureMessage).
import { DefaultFailureConverter } from '@temporalio/common';

/** The worker loads this module by path (failureConverterPath): its workflow sandbox gets the same converter. */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
