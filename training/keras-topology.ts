// What the tensorflowjs converter writes from Keras 3 (and tf_keras), made into what tfjs's Layers deserializer reads,
// before tfjs builds it. Keras 3 writes InputLayer's `batch_shape` (tfjs wants `batch_input_shape`), dtype policies as
// objects, functional connections as `{args: [__keras_tensor__...]}` nodes, and (tf_keras) BatchNormalization's axis
// as a list; weight regularizers and constraints are taken out of the topology and returned, for the trainer to add to
// the loss and to apply after each update.
// Weights are named by the converter as the layer's path (`feat1/kernel`, `mlp/feat1/kernel`) or, from a .keras file,
// by Keras 3's storage path (`layers/dense_1/vars/0`); weightKeyMap maps them to the tfjs model's weights.
import { DurableTrainError } from '../spec/errors';
import type * as tf from '@tensorflow/tfjs';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A weight's L1/L2 penalty, Keras's: l1 * sum(|w|) + l2 * sum(w^2), added to the loss. */
export interface WeightPenalty {
  /** The tfjs weight name: <layer>/<role>. */
  weight: string;
  l1: number;
  l2: number;
}

/**
 * A weight's Keras constraint, applied to it after every optimizer update (Keras's MaxNorm, MinMaxNorm, UnitNorm and
 * NonNeg: the norms are over `axis`, the others kept).
 */
export interface WeightConstraint {
  /** The tfjs weight name: <layer>/<role>. */
  weight: string;
  kind: 'MaxNorm' | 'MinMaxNorm' | 'UnitNorm' | 'NonNeg';
  /** The axes the norms run over (Keras's default: 0); null: all of them (Keras's axis=None). */
  axis: number[] | null;
  minValue: number;
  maxValue: number;
  rate: number;
}

export class KerasTopologyError extends DurableTrainError {
  readonly code = 'invalid' as const;
}

// A Keras layer's weights by the prefix of their regularizer and constraint keys (kernel_regularizer,
// recurrent_constraint, ...), with the role tfjs names the weight by.
const WEIGHT_ROLES: Record<string, string> = {
  kernel: 'kernel',
  bias: 'bias',
  embeddings: 'embeddings',
  gamma: 'gamma',
  beta: 'beta',
  recurrent: 'recurrent_kernel',
  depthwise: 'depthwise_kernel',
  pointwise: 'pointwise_kernel',
};
const CONSTRAINT_KINDS: Record<string, WeightConstraint['kind']> = {
  MaxNorm: 'MaxNorm',
  max_norm: 'MaxNorm',
  MinMaxNorm: 'MinMaxNorm',
  min_max_norm: 'MinMaxNorm',
  UnitNorm: 'UnitNorm',
  unit_norm: 'UnitNorm',
  NonNeg: 'NonNeg',
  non_neg: 'NonNeg',
};
// Keras 3 keys tfjs does not know and that change nothing the training loop computes.
const DROPPED = ['build_config', 'shared_object_id', 'module', 'registered_name', 'optional', 'quantization_config'];

/** The L1/L2 factors of a Keras regularizer object, or an error naming what is supported. */
function penaltyOf(reg: unknown, where: string): { l1: number; l2: number } {
  const cls = isObj(reg) ? String(reg.class_name) : JSON.stringify(reg);
  const cfg = isObj(reg) && isObj(reg.config) ? reg.config : {};
  const num = (k: string) => (cfg[k] === undefined || cfg[k] === null ? 0 : Number(cfg[k]));
  let l1 = 0;
  let l2 = 0;
  if (cls === 'L1' || cls === 'l1') l1 = num('l1');
  else if (cls === 'L2' || cls === 'l2') l2 = num('l2');
  else if (cls === 'L1L2' || cls === 'l1_l2') [l1, l2] = [num('l1'), num('l2')];
  else throw new KerasTopologyError(`${where}: regularizer ${cls} is not supported (supported: L1, L2, L1L2)`);
  if (!(Number.isFinite(l1) && l1 >= 0 && Number.isFinite(l2) && l2 >= 0))
    throw new KerasTopologyError(`${where}: regularizer ${cls} needs finite factors >= 0`);
  return { l1, l2 };
}

/** A Keras constraint object as applied by the trainer (Keras's defaults), or an error naming what is supported. */
function constraintOf(c: unknown, weight: string, where: string): WeightConstraint {
  const cls = isObj(c) ? String(c.class_name) : JSON.stringify(c);
  const kind = CONSTRAINT_KINDS[cls];
  if (!kind)
    throw new KerasTopologyError(
      `${where}: constraint ${cls} is not supported (supported: MaxNorm, MinMaxNorm, UnitNorm, NonNeg)`,
    );
  const cfg = isObj(c) && isObj(c.config) ? c.config : {};
  const num = (k: string, dflt: number) => {
    const v = cfg[k] === undefined || cfg[k] === null ? dflt : Number(cfg[k]);
    if (!Number.isFinite(v)) throw new KerasTopologyError(`${where}: constraint ${cls}: ${k} must be a finite number`);
    return v;
  };
  // Absent: Keras's default 0; null (axis=None): the norm of the whole weight.
  const axisOf =
    cfg.axis === undefined ? [0] : cfg.axis === null ? null : Array.isArray(cfg.axis) ? cfg.axis : [cfg.axis];
  if (axisOf && !axisOf.every((a) => Number.isInteger(a)))
    throw new KerasTopologyError(`${where}: constraint ${cls}: axis ${JSON.stringify(cfg.axis)} must be integers`);
  const out: WeightConstraint = {
    weight,
    kind,
    axis: axisOf as number[] | null,
    minValue: num('min_value', 0),
    maxValue: num('max_value', kind === 'MaxNorm' ? 2 : 1),
    rate: num('rate', 1),
  };
  if (out.minValue < 0 || out.maxValue < out.minValue)
    throw new KerasTopologyError(`${where}: constraint ${cls}: needs 0 <= min_value <= max_value`);
  return out;
}

/** Keras 3's functional node {args: [tensor | [tensors]], kwargs} as tf_keras's [[layer, node, tensor, kwargs], ...]. */
function legacyNode(node: unknown, where: string): unknown {
  if (!isObj(node) || !Array.isArray(node.args)) return node;
  const tensors: unknown[] = [];
  const visit = (a: unknown) => {
    if (Array.isArray(a)) a.forEach(visit);
    else if (isObj(a) && a.class_name === '__keras_tensor__' && isObj(a.config)) {
      const h = a.config.keras_history as unknown[];
      tensors.push([h[0], h[1], h[2], {}]);
    } else throw new KerasTopologyError(`${where}: inbound_nodes: argument ${JSON.stringify(a)} is not a layer output`);
  };
  visit(node.args);
  if (isObj(node.kwargs) && Object.keys(node.kwargs).some((k) => node.kwargs && (node.kwargs as Obj)[k] != null))
    throw new KerasTopologyError(
      `${where}: inbound_nodes: call arguments ${Object.keys(node.kwargs).join(', ')} are not supported`,
    );
  return tensors;
}

/**
 * A Keras topology (model.json's modelTopology) as tfjs reads it, and the weight penalties it declared. Throws a
 * KerasTopologyError naming the layer and field that cannot be trained.
 */
export function normalizeKerasTopology(topology: unknown): {
  topology: unknown;
  penalties: WeightPenalty[];
  constraints: WeightConstraint[];
} {
  const copy = JSON.parse(JSON.stringify(topology)) as Obj;
  const model = isObj(copy.model_config) ? copy.model_config : copy;
  const penalties: WeightPenalty[] = [];
  const constraints: WeightConstraint[] = [];
  const fixDtype = (cfg: Obj) => {
    if (isObj(cfg.dtype)) cfg.dtype = isObj(cfg.dtype.config) ? cfg.dtype.config.name : 'float32';
  };
  if (isObj(model.config)) {
    fixDtype(model.config);
    // Keras 3 writes a functional model's single input or output as [name, node, tensor], tf_keras as a list of them.
    for (const k of ['input_layers', 'output_layers']) {
      const v = model.config[k];
      if (Array.isArray(v) && typeof v[0] === 'string') model.config[k] = [v];
    }
  }
  const layers = isObj(model.config) && Array.isArray(model.config.layers) ? (model.config.layers as unknown[]) : [];
  layers.forEach((layer, i) => {
    if (!isObj(layer) || !isObj(layer.config)) return;
    const cfg = layer.config;
    const where = `layer ${String(cfg.name ?? layer.name ?? i)} (index ${i}, ${String(layer.class_name)})`;
    for (const k of DROPPED) delete layer[k];
    for (const k of DROPPED) delete cfg[k];
    fixDtype(cfg);
    if (layer.class_name === 'InputLayer' && cfg.batch_shape !== undefined && cfg.batch_input_shape === undefined) {
      cfg.batch_input_shape = cfg.batch_shape;
      delete cfg.batch_shape;
    }
    if (Array.isArray(cfg.axis)) {
      if (cfg.axis.length !== 1)
        throw new KerasTopologyError(`${where}: axis ${JSON.stringify(cfg.axis)}: one axis only (the last)`);
      cfg.axis = cfg.axis[0];
    }
    if (cfg.activity_regularizer != null)
      throw new KerasTopologyError(`${where}: activity_regularizer is not supported (supported: weight regularizers)`);
    for (const [prefix, role] of Object.entries(WEIGHT_ROLES)) {
      const key = `${prefix}_regularizer`;
      if (cfg[key] == null) continue;
      const p = penaltyOf(cfg[key], `${where}: ${key}`);
      if (p.l1 || p.l2) penalties.push({ weight: `${String(cfg.name)}/${role}`, ...p });
      cfg[key] = null;
    }
    for (const [prefix, role] of Object.entries(WEIGHT_ROLES)) {
      const key = `${prefix}_constraint`;
      if (cfg[key] == null) continue;
      constraints.push(constraintOf(cfg[key], `${String(cfg.name)}/${role}`, `${where}: ${key}`));
      cfg[key] = null;
    }
    if (layer.class_name === 'GRU' && cfg.reset_after === true)
      throw new KerasTopologyError(
        `${where}: reset_after true (Keras 3's default) is not supported: tfjs computes GRUs with reset_after=False ` +
          'only; build the layer with GRU(..., reset_after=False)',
      );
    for (const k of ['renorm', 'synchronized'])
      if (cfg[k] === true) throw new KerasTopologyError(`${where}: ${k} is not supported`);
    if (Array.isArray(layer.inbound_nodes)) layer.inbound_nodes = layer.inbound_nodes.map((n) => legacyNode(n, where));
  });
  return { topology: copy, penalties, constraints };
}

/** Keras's to_snake_case, which names a .keras file's storage paths (Conv2D: conv2d, BatchNormalization: batch_normalization). */
const kerasSnake = (s: string) =>
  s
    .replace(/(.)([A-Z][a-z]+)/g, '$1_$2')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase();

/** Keras 3 names DepthwiseConv2D's kernel `<layer>/kernel`; tfjs (and tf_keras) `<layer>/depthwise_kernel`. */
function depthwiseAlias(own: Set<string>, name: string): string | undefined {
  const alias = name.replace(/\/kernel$/, '/depthwise_kernel');
  return alias !== name && own.has(alias) ? alias : undefined;
}

/**
 * For each weight name of a model file, the tfjs model's weight it is: the same name, the name under the model's own
 * (`mlp/feat1/kernel`), or Keras 3's storage path `layers/<class in snake case>[_<n>]/vars/<i>` (the n-th layer of
 * that class, its i-th weight; `.../cell/vars/<i>` for a recurrent layer's).
 */
export function weightKeyMap(model: tf.LayersModel, names: string[]): Map<string, string> {
  const own = new Set(model.weights.map((w) => w.originalName));
  const storage = new Map<string, string>();
  const seen = new Map<string, number>();
  for (const layer of model.layers) {
    const base = kerasSnake(layer.getClassName());
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    const key = n === 0 ? base : `${base}_${n}`;
    layer.weights.forEach((w, i) => {
      storage.set(`layers/${key}/vars/${i}`, w.originalName);
      // A recurrent layer's weights live in its cell: layers/lstm/cell/vars/<i>.
      storage.set(`layers/${key}/cell/vars/${i}`, w.originalName);
    });
  }
  const map = new Map<string, string>();
  for (const name of names) {
    if (own.has(name)) map.set(name, name);
    else if (storage.has(name)) map.set(name, storage.get(name)!);
    else {
      const rest = name.split('/').slice(1).join('/');
      map.set(name, own.has(rest) ? rest : (depthwiseAlias(own, name) ?? depthwiseAlias(own, rest) ?? name));
    }
  }
  return map;
}
