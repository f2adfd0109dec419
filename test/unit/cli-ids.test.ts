// The one id rule (spec/ids.ts) and the CLI's learning-rate check: what is refused, with which message,
// and that every id this project makes or documents passes.
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { CliError, defaultRunId, loadSpecFile, projectPath, runIdArg } from '../../cli/common';
import { parseLearningRate } from '../../cli/control';
import { checkpointId } from '../../checkpoint';
import { InvalidIdError, isValidId, MAX_ID_LENGTH, validateCheckpointId, validateRunId } from '../../spec/ids';

describe('run and checkpoint ids (spec/ids)', function () {
  it('refuses traversal, separators, control characters, empty and overlong ids, naming the reason', function () {
    const cases: Array<[string, RegExp]> = [
      ['../x', /^invalid run id "\.\.\/x": it contains a path separator "\/"/],
      ['.', /^invalid run id "\.": "\." and "\.\." are not ids/],
      ['..', /^invalid run id "\.\.": "\." and "\.\." are not ids/],
      ['/abs', /^invalid run id "\/abs": it contains a path separator/],
      ['a/b', /^invalid run id "a\/b": it contains a path separator/],
      ['a\\b', /^invalid run id "a\\\\b": it contains a path separator/],
      ['a\nb', /^invalid run id "a\\nb": it contains a control character "\\n"/],
      ['a\u0000b', /control character/],
      ['x'.repeat(1000), /^invalid run id "x{32}\.\.\." \(1000 characters\): too long \(at most 200 characters\)$/],
      ['', /^invalid run id "": it is empty; use letters, digits/],
      ['.hidden', /it starts with "\."/],
      ['a:b', /it contains ":"/],
      ['a b', /it contains " "/],
      ['ü', /it contains "ü"/],
    ];
    for (const [id, message] of cases) {
      assert.throws(
        () => validateRunId(id),
        (err: unknown) => err instanceof InvalidIdError && message.test(err.message),
        JSON.stringify(id),
      );
    }
    assert.throws(() => validateRunId(undefined), /invalid run id undefined: must be a string/);
    assert.throws(() => validateCheckpointId('../m'), /^InvalidIdError: invalid checkpoint id "\.\.\/m"/);
  });

  it('accepts the ids the project makes and documents', function () {
    const spec = loadSpecFile(projectPath('examples', 'mnist-mlp-small.json'));
    const ids = [
      'mnist-cnn-default',
      'x-fork-abc',
      `ref-fork-${Date.now().toString(36)}`,
      defaultRunId(spec),
      'small-1',
      'exp_mlp.v2',
      'a'.repeat(MAX_ID_LENGTH),
      '7',
    ];
    for (const id of ids) assert.equal(validateRunId(id), id);
    assert.equal(validateCheckpointId(checkpointId(300, 'ab'.repeat(32))), 'step-000000300-abababab');
  });

  it('is exactly: letters, digits, - _ . (not first), 1..200 characters', function () {
    fc.assert(
      fc.property(fc.string({ maxLength: 260, unit: 'binary' }), (s) => {
        const expected = s.length >= 1 && s.length <= MAX_ID_LENGTH && /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(s);
        assert.equal(isValidId(s), expected, JSON.stringify(s));
      }),
    );
  });

  it('the CLI turns a bad id into a one-line usage error (exit 2)', function () {
    assert.throws(
      () => runIdArg('../x'),
      (err: unknown) => err instanceof CliError && err.exitCode === 2 && !err.message.includes('\n'),
    );
  });
});

describe('set-lr values (cli/control)', function () {
  it('accepts (0, 10] when float32 keeps it above zero; refuses the rest before anything is sent', function () {
    for (const ok of ['0.001', '10', '1e-40', '1.4e-45']) assert.equal(parseLearningRate(ok), Number(ok));
    const bad: Array<[string, RegExp]> = [
      ['1e-320', /1e-320 is 0 in float32/],
      ['5e-46', /is 0 in float32/],
      ['0', /must be > 0/],
      ['-0.1', /must be > 0/],
      ['10.5', /must be <= 10/],
      ['1e400', /must be a number/],
      ['abc', /must be a number/],
      ['', /must be a number/],
    ];
    for (const [raw, message] of bad) {
      assert.throws(
        () => parseLearningRate(raw),
        (err: unknown) => err instanceof CliError && err.exitCode === 2 && message.test(err.message),
        raw,
      );
    }
  });
});
