// The layer registry's tfjs-free half: every layer kind a model may use, one module each under spec/layers/ (its
// options and their checks, its tfjs/Keras class name), registered in KIND_LIST below. The spec schema (and so the
// workflows) import only this half; training/layers.ts registers each kind's other half (builder, forward pass with
// our PRNG, weight roles) from training/layers/. A new layer kind: spec/layers/<kind>.ts, training/layers/<kind>.ts,
// and one line in each registry.
import { activation } from './layers/activation';
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

export class LayerError extends Error {
  constructor(
    readonly index: number,
    readonly field: string,
    message: string,
  ) {
    super(`model.layers[${index}]${field ? `.${field}` : ''}: ${message}`);
    this.name = 'LayerError';
  }
}

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
    if (k !== 'type' && k !== 'name' && !options.includes(k))
      throw new LayerError(
        i,
        k,
        `unsupported option for ${spec.type} (supported: name, ${options.join(', ') || 'none'})`,
      );
  }
  for (const [k, rule] of [['name', NAME_RULE] as const, ...Object.entries(kind.options)]) {
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
