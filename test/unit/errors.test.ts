// One error vocabulary: every error class durable-train throws on purpose extends DurableTrainError with a code, and
// the two edges map the code: the CLI to an exit code, the activities to a failure type.
import * as assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { classifyFailure, FailureKinds } from '../../activities/failures';
import { FailureTypes } from '../../activities/types';
import {
  CheckpointConflictError,
  CheckpointCorruptError,
  CheckpointNotFoundError,
  CheckpointSignatureError,
  NoValidCheckpointError,
  StorageUnavailableError,
} from '../../checkpoint';
import { describeError } from '../../cli/program';
import { CliError, EXIT } from '../../cli/common';
import { CodecKeyError } from '../../codec/aes-gcm';
import { DurableTrainError, ERROR_CODES, errorCodeOf } from '../../spec/errors';
import { InvalidIdError } from '../../spec/ids';
import { LayerError } from '../../spec/layers';
import { ModelFitError } from '../../spec/model-fit';
import { SpecError } from '../../spec/schema';
import { AttemptTimeoutError } from '../../storage/request';
import { StorageUrlError } from '../../storage/url';
import { DatasetError } from '../../training/data/errors';
import { ConfigError, isConfigError, NonFiniteError } from '../../training/errors';
import { InputError } from '../../training/inference';
import { KerasTopologyError } from '../../training/keras-topology';
import { PreflightError } from '../../training/preflight';
import { RegistryError } from '../../training/registry';
import { failureReason } from '../../telemetry/metrics';

const unavailable = (code?: string) =>
  new StorageUnavailableError('s3 PUT s3://b/r/k failed: AccessDenied', {
    op: 'PUT',
    key: 'r/k',
    attempts: 1,
    retryable: false,
    code,
    status: 403,
  });

/** One instance of every error class, with the code it must carry. */
const EVERY: Array<[DurableTrainError, string]> = [
  [new CodecKeyError('no key k2'), 'invalid'],
  [new LayerError(1, 'units', 'must be a positive integer'), 'invalid'],
  [new InvalidIdError('run id', '../x', 'bad'), 'invalid'],
  [new ModelFitError('model: too large'), 'invalid'],
  [new SpecError('optimizer.learningRate', 'must be > 0'), 'invalid'],
  [new PreflightError('dataset', 'no rows'), 'invalid'],
  [new KerasTopologyError('unknown layer'), 'invalid'],
  [new InputError('row 1: 3 features, the model takes 4'), 'invalid'],
  [new RegistryError('no model named m'), 'invalid'],
  [new DatasetError('dataset.path', 'missing'), 'invalid'],
  [new ConfigError('model: bad'), 'invalid'],
  [new StorageUrlError('ftp://x', 'has an unknown scheme'), 'invalid'],
  [new NonFiniteError(3, 0.1, 'the training loss is NaN'), 'diverged'],
  [new AttemptTimeoutError(100), 'timeout'],
  [new CheckpointNotFoundError('r/manifests/x.json'), 'not-found'],
  [new NoValidCheckpointError('r', []), 'not-found'],
  [new CheckpointConflictError('r/manifests/x.json'), 'conflict'],
  [unavailable('AccessDenied'), 'unavailable'],
  [new CheckpointCorruptError('c1', 'blobs/ab', 'sha256 mismatch'), 'damaged'],
  [new CheckpointSignatureError('r', 'c1', 'mismatch', 'signature does not verify'), 'damaged'],
  [new CliError('status: no such run', EXIT.notFound), 'command'],
];

describe('errors: one base class, a code each, mapped once by the CLI and by the activities', function () {
  it('every error class extends DurableTrainError with its code and keeps its own name', function () {
    for (const [err, code] of EVERY) {
      assert.ok(err instanceof DurableTrainError, err.constructor.name);
      assert.ok(err instanceof Error);
      assert.equal(err.code, code, err.constructor.name);
      assert.equal(errorCodeOf(err), code);
      assert.ok((ERROR_CODES as readonly string[]).includes(err.code));
    }
    assert.equal(new StorageUrlError('x', 'y').name, 'StorageUrlError');
    assert.equal(errorCodeOf(new Error('plain')), undefined);
    assert.equal(errorCodeOf(Object.assign(new Error('errno'), { code: 'ENOENT' })), undefined);
  });

  it('the CLI maps each code to its exit code: invalid 2, not found 3, conflict 4, the rest 1', function () {
    const exit = (err: unknown) => describeError(err)[1];
    for (const [err, code] of EVERY) {
      if (err instanceof CliError) continue;
      const want =
        code === 'invalid'
          ? EXIT.usage
          : code === 'not-found'
            ? EXIT.notFound
            : code === 'conflict'
              ? EXIT.state
              : EXIT.check;
      assert.equal(exit(err), want, `${err.constructor.name} (${code})`);
    }
    assert.deepEqual(describeError(new CliError('already running', EXIT.state)), ['already running', EXIT.state]);
    // An invalid input's message is the line printed, as it is; an unexpected error is named and points at the stack.
    assert.equal(describeError(new DatasetError('dataset.label', 'no column y'))[0], 'dataset.label: no column y');
    assert.match(
      describeError(new TypeError('x is undefined'))[0],
      /^TypeError: x is undefined \(set DURABLE_TRAIN_DEBUG/,
    );
    assert.equal(describeError(new TypeError('x'))[1], EXIT.check);
  });

  it('the activities map each code to a failure: invalid input non-retryable, NaN as NonFinite, storage retried', function () {
    for (const [err, code] of EVERY) {
      const f = classifyFailure(err, 'run r');
      if (code === 'invalid') {
        assert.ok(f instanceof ApplicationFailure, err.constructor.name);
        assert.equal(f.type, FailureTypes.InvalidSpec, err.constructor.name);
        assert.equal(f.nonRetryable, true);
        assert.ok(isConfigError(err));
      } else if (code === 'diverged') {
        assert.ok(f instanceof ApplicationFailure);
        assert.equal(f.type, FailureKinds.NonFinite);
        assert.deepEqual(f.details, [{ step: 3, learningRate: 0.1 }]);
      } else {
        // Not-found, damage, storage and timeouts are the callers' to handle (fall back, retry): returned unchanged.
        assert.equal(f, err, err.constructor.name);
        assert.equal(isConfigError(err), false);
      }
    }
  });

  it("a storage failure keeps the store's own code beside its kind (metrics label, failure details)", function () {
    const err = unavailable('AccessDenied');
    assert.equal(err.code, 'unavailable');
    assert.equal(err.storageCode, 'AccessDenied');
    assert.equal(failureReason(err), 'AccessDenied');
    assert.equal(failureReason(unavailable(undefined)), 'unavailable');
    assert.equal(failureReason(Object.assign(new Error('disk'), { code: 'ENOSPC' })), 'ENOSPC');
    assert.equal(failureReason(new Error('x')), 'other');
  });
});
