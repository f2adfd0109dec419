// A model as a graph our forward pass walks: its layers in topological order, each with the nodes it reads. A
// Sequential model (or a layer list without `inputs`) is a chain; a functional model (tf.model / a model.json with
// inbound nodes, a layer list with `inputs`) may branch and merge (add, concatenate, ...). One model input, one output.
import * as tf from '@tensorflow/tfjs';
import { KINDS_BY_CLASS, SUPPORTED_CLASSES, type LayerKind } from './layers';

/** The model's input, as a node index. */
export const MODEL_INPUT = -1;

export interface GraphNode {
  layer: tf.layers.Layer;
  kind: LayerKind;
  /** Indices of the nodes whose outputs it reads, in order (MODEL_INPUT for the model's input). */
  inputs: number[];
}

export interface Graph {
  nodes: GraphNode[];
  /** The node whose output is the model's output. */
  output: number;
}

function kindOf(layer: tf.layers.Layer): LayerKind {
  const kind = KINDS_BY_CLASS.get(layer.getClassName());
  if (!kind)
    throw new Error(
      `models: unsupported layer ${layer.getClassName()} (${layer.name}); supported: ${[...SUPPORTED_CLASSES].join(', ')}`,
    );
  return kind;
}

const isInput = (l: tf.layers.Layer) => l.getClassName() === 'InputLayer';

/** The graph of a tf.layers model; throws naming a layer whose wiring our forward pass does not implement. */
export function graphOf(model: tf.LayersModel): Graph {
  const layers = model.layers.filter((l) => !isInput(l));
  if (model instanceof tf.Sequential) {
    const nodes = layers.map((layer, i) => ({ layer, kind: kindOf(layer), inputs: [i === 0 ? MODEL_INPUT : i - 1] }));
    return { nodes, output: nodes.length - 1 };
  }
  if (model.inputLayers.length !== 1 || model.outputLayers.length !== 1)
    throw new Error(
      `models: ${model.inputLayers.length} inputs and ${model.outputLayers.length} outputs; one of each is supported`,
    );
  const index = new Map(layers.map((l, i) => [l, i]));
  const inputsOf = (layer: tf.layers.Layer): number[] => {
    // A layer's inbound nodes within this model: a layer applied more than once (shared weights) is not supported.
    const own = layer.inboundNodes.filter((n) => n.inboundLayers.every((l) => isInput(l) || index.has(l)));
    if (own.length !== 1)
      throw new Error(`models: layer ${layer.name} is applied ${own.length} times; shared layers are not supported`);
    return own[0].inboundLayers.map((l) => {
      if (isInput(l)) {
        if (l !== model.inputLayers[0]) throw new Error(`models: layer ${layer.name} reads another model's input`);
        return MODEL_INPUT;
      }
      return index.get(l)!;
    });
  };
  const wired = layers.map((layer) => ({ layer, kind: kindOf(layer), inputs: inputsOf(layer) }));
  const order = topologicalOrder(wired.map((n) => n.inputs));
  const position = new Map(order.map((old, i) => [old, i]));
  const nodes = order.map((old) => ({
    ...wired[old],
    inputs: wired[old].inputs.map((j) => (j === MODEL_INPUT ? j : position.get(j)!)),
  }));
  const out = index.get(model.outputLayers[0]);
  if (out === undefined) throw new Error('models: the model output is its input');
  return { nodes, output: position.get(out)! };
}

/**
 * An order of nodes in which each comes after the nodes it reads (Kahn's algorithm; among ready nodes the first
 * listed goes first, so a chain keeps its order). `inputs[i]` lists the nodes node i reads (MODEL_INPUT: none).
 * Throws naming the nodes on a cycle.
 */
export function topologicalOrder(inputs: number[][], nameOf: (i: number) => string = String): number[] {
  const waiting = inputs.map((ins) => new Set(ins.filter((j) => j !== MODEL_INPUT)).size);
  const readers = inputs.map(() => [] as number[]);
  inputs.forEach((ins, i) => new Set(ins.filter((j) => j !== MODEL_INPUT)).forEach((j) => readers[j].push(i)));
  const ready = waiting.flatMap((w, i) => (w === 0 ? [i] : []));
  const order: number[] = [];
  while (ready.length) {
    ready.sort((a, b) => a - b);
    const i = ready.shift()!;
    order.push(i);
    for (const r of readers[i]) if (--waiting[r] === 0) ready.push(r);
  }
  if (order.length !== inputs.length) {
    const stuck = waiting.flatMap((w, i) => (w > 0 ? [nameOf(i)] : []));
    throw new Error(`models: the layers ${stuck.join(', ')} form a cycle`);
  }
  return order;
}
