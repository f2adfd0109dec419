// What identifies a model for resume: a fingerprint of its structure, and a stable path for each weight.
//
// tfjs names a layer the code did not name from a process-wide counter (`dense_Dense3`, model `sequential_2`), so the
// same builder gives other names each time it runs. Version 2 (every new run) is structural: layer classes, their
// configs with every layer name replaced by the layer's position, the connections between them, and the weights'
// stable paths and shapes in model order. A layer named by its code keeps its name in its weight paths
// (model/conv1/kernel); an unnamed layer's weights are at model/layer<i>_<class>/<role>, <i> its position.
// Version 1 (checkpoints written before version 2, which record no version) hashed the tfjs names: it is kept to
// check those checkpoints, whose weights are then found under their tfjs names.
import { createHash } from 'crypto';
import type * as tf from '@tensorflow/tfjs';

export type FingerprintVersion = 1 | 2;
/** The version new runs record. */
export const FINGERPRINT_VERSION: FingerprintVersion = 2;

/** The version a snapshot's state records: none (written before versions existed) is 1. */
export function recordedFingerprintVersion(
  state: { fingerprintVersion?: unknown } | null | undefined,
): FingerprintVersion {
  const v = state?.fingerprintVersion;
  if (v === undefined) return 1;
  if (v === 1 || v === 2) return v;
  throw new Error(
    `snapshot state: fingerprintVersion ${JSON.stringify(v)} is not 1 or 2 (written by a newer version?)`,
  );
}

/** A layer name tfjs made up from its counter: `<snake_class>_<Class><n>`, or a Sequential's `<that>_input`. */
export function isGeneratedLayerName(name: string, className: string): boolean {
  const m = /^(.+)_input$/.exec(name);
  if (m && className === 'InputLayer') return GENERATED.test(m[1]) || /^input\d*$/.test(m[1]);
  return (
    new RegExp(`^[a-z0-9_]+_${className}\\d+$`).test(name) || (className === 'InputLayer' && /^input\d+$/.test(name))
  );
}
const GENERATED = /^[a-z0-9_]+_[A-Z][A-Za-z0-9]*\d+$/;

/** Each layer's name in weight paths: its own when its code named it, else layer<i>_<class in lower case> (i: its position). */
export function stableLayerNames(model: tf.LayersModel): Map<string, string> {
  const names = new Map<string, string>();
  model.layers.forEach((layer, i) => {
    const cls = layer.getClassName();
    names.set(layer.name, isGeneratedLayerName(layer.name, cls) ? `layer${i}_${cls.toLowerCase()}` : layer.name);
  });
  return names;
}

/** `v` (a topology, or what else describes the model) with the model's layer and model names replaced by positions. */
export function withoutNames(model: tf.LayersModel, v: unknown): unknown {
  const positions = new Map<string, string>(model.layers.map((l, i) => [l.name, `#${i}`]));
  positions.set(model.name, '#model');
  const walk = (x: unknown): unknown => {
    if (typeof x === 'string') return positions.get(x) ?? (GENERATED.test(x) ? '#generated' : x);
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, walk(y)]));
    return x;
  };
  return walk(v);
}

interface NamedShape {
  name: string;
  shape: number[];
}

/**
 * Version 2: the model's kind, its structure (tfjs's serialization without names), what else defines it (`extra`: a
 * layer list's options, a model file's topology; names replaced likewise) and its weights' stable paths and shapes in
 * model order.
 */
export function structuralFingerprint(
  kind: string,
  model: tf.LayersModel,
  weights: NamedShape[],
  extra: unknown,
): string {
  return sha256({
    fingerprint: 2,
    model: kind,
    topology: withoutNames(model, model.toJSON(undefined, false)),
    ...(extra !== null ? { extra: withoutNames(model, extra) } : {}),
    weights: weights.map((w) => [w.name, w.shape]),
  });
}

/** Version 1: the weights' tfjs-derived names and shapes, sorted by name, and what else defined the topology. */
export function legacyFingerprint(kind: string, weights: NamedShape[], topology: unknown): string {
  const sorted = [...weights].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sha256({
    model: kind,
    weights: sorted.map((p) => [p.name, p.shape]),
    ...(topology !== null ? { topology } : {}),
  });
}

const sha256 = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex');

/**
 * A version-1 snapshot's tensors under this model's stable paths: a weight (or an optimizer slot of it) stored under
 * its tfjs-derived name is renamed to its stable path, unless the snapshot already has that path.
 */
export function renameLegacyTensors<T extends { name: string }>(
  tensors: T[],
  params: Array<{ name: string; legacyName?: string }>,
): T[] {
  const renames = new Map<string, string>();
  for (const p of params) if (p.legacyName && p.legacyName !== p.name) renames.set(p.legacyName, p.name);
  if (!renames.size) return tensors;
  const have = new Set(tensors.map((t) => t.name));
  return tensors.map((t) => {
    for (const [legacy, stable] of renames) {
      if (t.name === legacy || (t.name.startsWith('opt/') && t.name.endsWith(`/${legacy}`))) {
        const renamed = t.name.slice(0, t.name.length - legacy.length) + stable;
        return have.has(renamed) ? t : { ...t, name: renamed };
      }
    }
    return t;
  });
}
