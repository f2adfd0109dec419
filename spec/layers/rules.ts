// What a layer kind's tfjs-free half declares (its spec options and their checks, its tfjs class name), and the option
// rules kinds share. Pure: the spec schema (and so the workflows) import it.

/** One option of a layer kind: the check of its value and how to say what is allowed. */
export interface OptionRule {
  ok: (v: unknown) => boolean;
  what: string;
  required?: boolean;
}

/** The tfjs-free half of a layer kind: what a spec's layer list may say about it. */
export interface LayerKindSpec {
  /** The spec name (`type`), e.g. conv2d. */
  type: string;
  /** The tfjs / Keras layer class it builds, e.g. Conv2D. */
  className: string;
  /** The options besides type, name and inputs, in the order the error messages list them. */
  options: Record<string, OptionRule>;
  /** Holds weights (what `freeze` may name). */
  weighted: boolean;
  /** Combines two or more inputs (add, concatenate, ...): its `inputs` must name at least two layers. */
  merge?: boolean;
  /**
   * For a merge layer: what is wrong with the shapes of its inputs (without the batch axis, in `inputs` order), or null.
   */
  checkInputShapes?: (shapes: number[][], options: Record<string, unknown>) => string | null;
  /** A further check of the options together; returns [field, message] of the first problem. */
  check?: (options: Record<string, unknown>) => [string, string] | null;
  /** The check of a model file's layer of this class, given its tfjs config (sizes as arrays); as `check`. */
  checkConfig?: (config: Record<string, unknown>) => [string, string] | null;
}

export const ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'tanh',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'softmax',
] as const;

export const isPosInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1_000_000;
const isNonNegInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 1_000_000;
const isShape = (v: unknown) => Array.isArray(v) && v.length >= 1 && v.length <= 4 && v.every(isPosInt);
const isSize = (v: unknown) => isPosInt(v) || (Array.isArray(v) && v.length === 2 && v.every(isPosInt));
const isBool = (v: unknown) => typeof v === 'boolean';
const isUnit = (v: unknown) => typeof v === 'number' && v >= 0 && v < 1;

const required = (r: OptionRule): OptionRule => ({ ...r, required: true });

export const RULES = {
  posInt: { ok: isPosInt, what: 'a positive integer' },
  shape: { ok: isShape, what: 'a list of 1 to 4 positive integers' },
  size2: { ok: isSize, what: 'a positive integer or [h, w]' },
  padding: { ok: (v: unknown) => v === 'valid' || v === 'same', what: '"valid" or "same"' },
  bool: { ok: isBool, what: 'true or false' },
  activation: {
    ok: (v: unknown) => (ACTIVATIONS as readonly unknown[]).includes(v),
    what: `one of ${ACTIVATIONS.join(', ')}`,
  },
  recurrentActivation: {
    ok: (v: unknown) => v === 'sigmoid' || v === 'hardSigmoid',
    what: '"sigmoid" (the default) or "hardSigmoid"',
  },
  rate: { ok: isUnit, what: 'a number in [0, 1)' },
  epsilon: { ok: (v: unknown) => typeof v === 'number' && v > 0 && v < 1, what: 'a number in (0, 1)' },
  /** Padding amounts: n, [a, b] (both sides of each spatial axis), or [[top, bottom], [left, right]]. */
  padding2d: {
    ok: (v: unknown) =>
      isNonNegInt(v) ||
      (Array.isArray(v) && v.length === 2 && v.every(isNonNegInt)) ||
      (Array.isArray(v) &&
        v.length === 2 &&
        v.every((p) => Array.isArray(p) && p.length === 2 && p.every(isNonNegInt))),
    what: 'a non-negative integer, [rows, cols] or [[top, bottom], [left, right]]',
  },
  required,
} as const;

/** The options every kind takes: the input shape (on the first layer) and nothing else. */
export const INPUT_SHAPE = { inputShape: RULES.shape };

const show = (s: number[]) => JSON.stringify(s);

/** Merge layers that combine elementwise (add, multiply, average): their inputs have one shape. */
export function sameShapes(type: string) {
  return (shapes: number[][]): string | null => {
    const bad = shapes.findIndex((s) => show(s) !== show(shapes[0]));
    return bad < 0
      ? null
      : `${type} needs inputs of one shape; input 1 is ${show(shapes[0])}, input ${bad + 1} is ${show(shapes[bad])}`;
  };
}

/** The recurrent layers' (lstm, gru) options and check. */
export function recurrentKind(type: string, className: string): LayerKindSpec {
  return {
    type,
    className,
    options: {
      units: RULES.required(RULES.posInt),
      activation: RULES.activation,
      recurrentActivation: RULES.recurrentActivation,
      useBias: RULES.bool,
      returnSequences: RULES.bool,
      dropout: RULES.rate,
      recurrentDropout: RULES.rate,
      ...INPUT_SHAPE,
    },
    weighted: true,
    check: (o) => (o.activation === 'softmax' ? ['activation', `${type} supports every activation but softmax`] : null),
  };
}
