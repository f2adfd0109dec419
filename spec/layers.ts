// The layer registry's tfjs-free half: every layer kind a model may use, one module each under spec/layers/ (its
// options and their checks, its tfjs/Keras class name), registered in KIND_LIST below. The spec schema (and so the
// workflows) import only this half; training/layers.ts registers each kind's other half (builder, forward pass with
// our PRNG, weight roles) from training/layers/. A new layer kind: spec/layers/<kind>.ts, training/layers/<kind>.ts,
// and one line in each registry.
import { DurableTrainError } from './errors';
import { activation } from './layers/activation';
import { depthwiseConv2d } from './layers/depthwiseConv2d';
import { separableConv2d } from './layers/separableConv2d';
import { zeroPadding2d } from './layers/zeroPadding2d';
import { upSampling2d } from './layers/upSampling2d';
import { layerNormalization } from './layers/layerNormalization';
import { gru } from './layers/gru';
import { lstm } from './layers/lstm';
import { globalMaxPooling2d } from './layers/globalMaxPooling2d';
import { globalMaxPooling1d } from './layers/globalMaxPooling1d';
import { maxPooling1d } from './layers/maxPooling1d';
import { conv1d } from './layers/conv1d';
import { average } from './layers/average';
import { multiply } from './layers/multiply';
import { concatenate } from './layers/concatenate';
import { add } from './layers/add';
import { averagePooling2d } from './layers/averagePooling2d';
import { batchNormalization } from './layers/batchNormalization';
import { conv2d } from './layers/conv2d';
import { dense } from './layers/dense';
import { dropout } from './layers/dropout';
import { embedding } from './layers/embedding';
import { flatten } from './layers/flatten';
import { globalAveragePooling2d } from './layers/globalAveragePooling2d';
import { maxPooling2d } from './layers/maxPooling2d';
import { reshape } from './layers/reshape';
import type { LayerKindSpec } from './layers/rules';

export { ACTIVATIONS, type LayerKindSpec } from './layers/rules';

const KIND_LIST: readonly LayerKindSpec[] = [
  dense,
  conv2d,
  maxPooling2d,
  averagePooling2d,
  globalAveragePooling2d,
  flatten,
  reshape,
  dropout,
  activation,
  batchNormalization,
  embedding,
  add,
  concatenate,
  multiply,
  average,
  conv1d,
  maxPooling1d,
  globalMaxPooling1d,
  globalMaxPooling2d,
  lstm,
  gru,
  layerNormalization,
  upSampling2d,
  zeroPadding2d,
  depthwiseConv2d,
  separableConv2d,
];

export interface LayerSpec {
  type: string;
  [option: string]: unknown;
}

/** Layer kinds by spec name. */
export const SPEC_KINDS: Readonly<Record<string, LayerKindSpec>> = Object.fromEntries(
  KIND_LIST.map((k) => [k.type, k]),
);

/** Layer kinds by spec name: the tfjs layer class each builds, and the options (besides type and name) it accepts. */
export const LAYER_KINDS: Record<string, { className: string; options: readonly string[] }> = Object.fromEntries(
  KIND_LIST.map((k) => [k.type, { className: k.className, options: Object.keys(k.options) }]),
);

export const LAYER_TYPES = KIND_LIST.map((k) => k.type);

/** Layer types that hold weights (what `freeze` may name). */
export const WEIGHTED_TYPES = KIND_LIST.filter((k) => k.weighted).map((k) => k.type);

/** The name a listed layer gets: its own `name`, else `<type><1-based index>` (dense1, conv2d2, ...). */
export const layerNameOf = (l: LayerSpec, i: number): string =>
  typeof l.name === 'string' ? l.name : `${l.type}${i + 1}`;

export class LayerError extends DurableTrainError {
  readonly code = 'invalid' as const;

  constructor(
    readonly index: number,
    readonly field: string,
    message: string,
  ) {
    super(`model.layers[${index}]${field ? `.${field}` : ''}: ${message}`);
    this.name = 'LayerError';
  }
}

/** How `inputs` names the model's input. */
export const MODEL_INPUT_NAME = 'input';

const INPUTS_RULE = {
  ok: (v: unknown) =>
    (typeof v === 'string' && v !== '') ||
    (Array.isArray(v) && v.length >= 1 && v.length <= 64 && v.every((n) => typeof n === 'string' && n !== '')),
  what: `a layer name or a list of them (earlier layers, or "${MODEL_INPUT_NAME}" for the model's input)`,
};

const NAME_RULE = {
  ok: (v: unknown) => typeof v === 'string' && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(v),
  what: 'a name like dense_1',
};

/** Checks one layer of a spec's layer list; throws a LayerError naming the layer, its index and what is allowed. */
export function checkLayerSpec(l: unknown, i: number, isLast: boolean): void {
  if (!l || typeof l !== 'object' || Array.isArray(l)) throw new LayerError(i, '', 'must be an object with a "type"');
  const spec = l as LayerSpec;
  const kind = Object.hasOwn(SPEC_KINDS, spec.type) ? SPEC_KINDS[spec.type] : undefined;
  if (!kind)
    throw new LayerError(
      i,
      'type',
      `unsupported layer ${JSON.stringify(spec.type)} (supported: ${LAYER_TYPES.join(', ')})`,
    );
  const options = Object.keys(kind.options);
  for (const k of Object.keys(spec)) {
    if (k !== 'type' && k !== 'name' && k !== 'inputs' && !options.includes(k))
      throw new LayerError(
        i,
        k,
        `unsupported option for ${spec.type} (supported: name, inputs, ${options.join(', ') || 'none'})`,
      );
  }
  for (const [k, rule] of [
    ['name', NAME_RULE] as const,
    ['inputs', INPUTS_RULE] as const,
    ...Object.entries(kind.options),
  ]) {
    if (spec[k] === undefined) {
      if ('required' in rule && rule.required) throw new LayerError(i, k, `missing (${spec.type} needs ${rule.what})`);
      continue;
    }
    if (!rule.ok(spec[k])) throw new LayerError(i, k, `must be ${rule.what}, got ${JSON.stringify(spec[k])}`);
    if (k === 'activation' && spec.activation === 'softmax' && !isLast)
      throw new LayerError(i, 'activation', 'softmax is supported on the last layer only (the loss works on logits)');
  }
  const problem = kind.check?.(spec);
  if (problem) throw new LayerError(i, problem[0], problem[1]);
}

/** What each listed layer reads, by name: its `inputs`, else the layer before it (the model's input for the first). */
export function layerInputsOf(layers: readonly LayerSpec[]): string[][] {
  return layers.map((l, i) => {
    if (typeof l.inputs === 'string') return [l.inputs];
    if (Array.isArray(l.inputs)) return l.inputs.map(String);
    return [i === 0 ? MODEL_INPUT_NAME : layerNameOf(layers[i - 1], i - 1)];
  });
}

/** Whether a layer list is a graph (some layer names its inputs) rather than a chain. */
export const isLayerGraph = (layers: readonly LayerSpec[]): boolean => layers.some((l) => l.inputs !== undefined);

/**
 * Checks the wiring of a layer list whose layers each passed checkLayerSpec: every name in `inputs` is the model's
 * input or a layer listed before (so no cycle can form), merge layers read two or more, the others one, and every
 * layer but the last is read by some layer. Throws a LayerError naming the layer and the field.
 */
export function checkLayerGraph(layers: readonly LayerSpec[]): void {
  const names = layers.map(layerNameOf);
  const inputs = layerInputsOf(layers);
  const read = new Set<string>();
  for (const [i, l] of layers.entries()) {
    if (names[i] === MODEL_INPUT_NAME)
      throw new LayerError(i, 'name', `"${MODEL_INPUT_NAME}" names the model's input in inputs; choose another name`);
    const before = [MODEL_INPUT_NAME, ...names.slice(0, i)];
    for (const n of inputs[i]) {
      if (!before.includes(n)) {
        const later = names.indexOf(n);
        throw new LayerError(
          i,
          'inputs',
          later >= i
            ? `${n} is not listed before this layer: a layer reads only the model's input and earlier layers, so that the graph has no cycle`
            : `unknown layer ${n} (this layer may read: ${before.join(', ')})`,
        );
      }
      read.add(n);
    }
    const kind = SPEC_KINDS[l.type];
    if (kind.merge && inputs[i].length < 2)
      throw new LayerError(
        i,
        'inputs',
        `${l.type} combines two or more layers: name them in inputs (this layer may read: ${before.join(', ')})`,
      );
    if (!kind.merge && inputs[i].length !== 1)
      throw new LayerError(
        i,
        'inputs',
        `${l.type} reads one input, got ${inputs[i].length} (combine them first with add, concatenate, multiply or average)`,
      );
  }
  for (const [i, n] of names.entries())
    if (i < names.length - 1 && !read.has(n))
      throw new LayerError(i, '', `the output of ${n} is read by no layer (name it in a later layer's inputs)`);
}
