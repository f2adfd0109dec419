// `runs list` and `lineage RUN_ID`: the runs on the server, and who was forked from whom.
import { Client, type WorkflowExecutionInfo } from '@temporalio/client';
import { defaultPayloadConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import type { CheckpointRef } from '../activities/types';
import { datasetLabel, modelLabel } from '../spec/labels';
import type { RunSpec } from '../spec';
import { hasValidationSplit } from '../spec/helpers';
import { TRAINING_WORKFLOW } from '../workflows/definitions';
import { EXIT, fmt, runStatus, type Out } from './common';
import type { RunResult } from '../workflows/progress';
import { defineCommand, RUN_ID_ARGUMENT } from './command';
import { connectClient } from './connection';

interface RunRow {
  runId: string;
  status: string;
  model: string | null;
  dataset: string | null;
  step: number | null;
  bestAccuracy: number | null;
  /** The split `bestAccuracy` is of: the validation split's, or the test split's for runs without one. */
  bestOn: 'validation' | 'test' | null;
  /** Regression runs: the final test mse and mae (known once the run completed). */
  mse?: number | null;
  mae?: number | null;
  /** Regression runs with a validation split: its last mse and mae (what the run's choices were made on). */
  valMse?: number | null;
  valMae?: number | null;
  /** Binary runs asking for auc: the final test auc (known once the run completed). */
  auc?: number | null;
  /** Distributed runs: the replica count of the run's spec (a fork or a resume may change it). */
  replicas?: number;
  startTime: string;
  forkedFrom: CheckpointRef | null;
  /** Set when this client cannot decrypt the run's memo (another key): the run is listed without its spec. */
  unreadable?: string;
}

/** Marks a memo this client cannot decode, in place of its value. */
const UNREADABLE = '__durableTrainUnreadable';

/**
 * The client's codecs, except that payloads they cannot decode (a run encrypted with a key this client lacks) become
 * a marker instead of failing the whole listing: one such run must not hide every other.
 */
function lenientCodec(codecs: readonly PayloadCodec[]): PayloadCodec {
  return {
    encode: (payloads: Payload[]) => Promise.resolve(payloads),
    async decode(payloads: Payload[]): Promise<Payload[]> {
      try {
        let out = payloads;
        for (const c of [...codecs].reverse()) out = await c.decode(out);
        return out;
      } catch (err) {
        const reason = String((err as Error)?.message ?? err);
        return payloads.map(() => defaultPayloadConverter.toPayload({ [UNREADABLE]: reason }));
      }
    },
  };
}

async function allRuns(client: Client): Promise<RunRow[]> {
  const rows = new Map<string, RunRow & { task?: string }>();
  const lenient = new Client({
    connection: client.connection,
    namespace: client.options.namespace,
    dataConverter: { payloadCodecs: [lenientCodec(client.options.loadedDataConverter.payloadCodecs)] },
  });
  for await (const w of lenient.workflow.list({ query: `WorkflowType = '${TRAINING_WORKFLOW}'` })) {
    if (rows.has(w.workflowId)) continue; // newest execution first; continue-as-new chains share the id
    rows.set(w.workflowId, row(w));
  }
  // Regression has no accuracy: a completed run's result gives its test mse and mae; a binary run's, its test auc.
  await Promise.all(
    [...rows.values()]
      .filter((r) => r.task === 'regression' || r.auc !== undefined)
      .map(async (r) => {
        const res = r.status === 'completed' ? await resultOf(client, r.runId) : null;
        if (r.task === 'regression') {
          r.mse = res?.mse ?? null;
          r.mae = res?.mae ?? null;
          if (r.bestOn === 'validation') {
            r.valMse = res?.validation?.mse ?? null;
            r.valMae = res?.validation?.mae ?? null;
          }
        } else r.auc = res?.auc ?? null;
      }),
  );
  return [...rows.values()].map(({ task: _task, ...r }) => r);
}

async function resultOf(client: Client, runId: string): Promise<RunResult | null> {
  return (client.workflow.getHandle(runId).result() as Promise<RunResult>).catch(() => null);
}

const metricText = (r: RunRow) =>
  r.mse !== undefined
    ? `${r.valMse !== undefined ? `val mse ${fmt(r.valMse)} mae ${fmt(r.valMae)}  ` : ''}test mse ${fmt(r.mse)} mae ${fmt(r.mae)}`
    : `best ${r.bestOn === 'validation' ? 'val' : 'test'} acc ${fmt(r.bestAccuracy)}` +
      (r.auc !== undefined ? ` test auc ${fmt(r.auc)}` : '');

function row(w: WorkflowExecutionInfo): RunRow & { task?: string } {
  const unreadable = Object.values(w.memo ?? {})
    .map((v) => (v as Record<string, unknown> | null)?.[UNREADABLE])
    .find((v): v is string => typeof v === 'string');
  const spec = unreadable ? undefined : (w.memo?.spec as RunSpec | undefined);
  const sa = w.searchAttributes as Record<string, unknown[] | undefined>;
  return {
    ...(unreadable ? { unreadable } : {}),
    runId: w.workflowId,
    status: runStatus(w.status.name, (sa.DurableTrainStatus?.[0] as string | undefined)?.toLowerCase()),
    model: spec ? modelLabel(spec.model) : null,
    dataset: spec ? datasetLabel(spec.dataset) : null,
    step: (sa.DurableTrainStep?.[0] as number | undefined) ?? null,
    bestAccuracy: (sa.DurableTrainBestAccuracy?.[0] as number | undefined) ?? null,
    bestOn: spec ? (hasValidationSplit(spec) ? 'validation' : 'test') : null,
    startTime: w.startTime.toISOString(),
    forkedFrom: unreadable ? null : ((w.memo?.forkedFrom as CheckpointRef | undefined) ?? null),
    task: spec?.task,
    ...(spec?.distributed ? { replicas: spec.distributed.replicas } : {}),
    ...(spec?.task === 'binary' && spec.metrics?.includes('auc') ? { auc: null } : {}),
  };
}

export async function runsListCommand(client: Client, out: Out): Promise<void> {
  const runs = await allRuns(client);
  out.emit(runs, () =>
    runs.length
      ? runs
          .map(
            (r) =>
              `${r.runId.padEnd(32)} ${r.status.padEnd(10)} ${(r.model ?? '-').padEnd(10)} step ${String(r.step ?? '-').padStart(6)}  ${metricText(r)}  ${r.startTime}` +
              (r.unreadable ? `  (spec unreadable: ${r.unreadable})` : ''),
          )
          .join('\n')
      : 'no runs',
  );
}

export interface LineageNode {
  runId: string;
  status: string;
  forkedFrom: CheckpointRef | null;
  /** Distributed runs: their replica count (absent for a single run). */
  replicas?: number;
  children: LineageNode[];
}

/** Prints the fork tree around `runId`; returns 3 (not found) when there is no such run. */
export async function lineageCommand(client: Client, out: Out, runId: string): Promise<number> {
  const runs = await allRuns(client);
  const byId = new Map(runs.map((r) => [r.runId, r]));
  if (!byId.has(runId)) {
    out.emit({ runId, found: false }, () => `no run ${runId}`);
    return EXIT.notFound;
  }
  let root = byId.get(runId)!;
  const seen = new Set<string>();
  while (root.forkedFrom && byId.has(root.forkedFrom.runId) && !seen.has(root.runId)) {
    seen.add(root.runId);
    root = byId.get(root.forkedFrom.runId)!;
  }
  const build = (r: RunRow): LineageNode => ({
    runId: r.runId,
    status: r.status,
    forkedFrom: r.forkedFrom,
    ...(r.replicas ? { replicas: r.replicas } : {}),
    children: runs.filter((c) => c.forkedFrom?.runId === r.runId && c.runId !== r.runId).map(build),
  });
  const tree = build(root);
  const lines: string[] = [];
  const draw = (n: LineageNode, prefix: string, last: boolean, top: boolean) => {
    const mark = n.runId === runId ? '  <--' : '';
    const from = n.forkedFrom ? ` (from ${n.forkedFrom.id})` : '';
    const width = n.replicas ? ` ${n.replicas} replica${n.replicas === 1 ? '' : 's'}` : '';
    lines.push(
      top
        ? `${n.runId} [${n.status}]${width}${mark}`
        : `${prefix}${last ? '└─ ' : '├─ '}${n.runId} [${n.status}]${width}${from}${mark}`,
    );
    n.children.forEach((c, i) =>
      draw(c, top ? '' : prefix + (last ? '   ' : '│  '), i === n.children.length - 1, false),
    );
  };
  draw(tree, '', true, true);
  out.emit(tree, () => lines.join('\n'));
  return EXIT.ok;
}

export const runsListDefinition = defineCommand({
  name: 'runs list',
  summary: 'runs with status, model, step and best accuracy',
  async run({ out }) {
    await runsListCommand(await connectClient(), out);
    return EXIT.ok;
  },
});

export const lineageDefinition = defineCommand({
  name: 'lineage',
  summary: 'the fork tree the run belongs to',
  arguments: [RUN_ID_ARGUMENT],
  async run({ args, out }) {
    const runId = args.RUN_ID;
    return lineageCommand(await connectClient(), out, runId);
  },
});
