// One Temporal worker: the training workflow and its activities on one task queue.
import * as http from 'node:http';
import * as path from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { BoundedFailures } from '../activities/bounded-failures';
import { killBeforeManifestFromEnv } from '../activities/trainer-process/failpoints';
import { TrainerSupervisor } from '../activities/trainer-process/supervisor';
import { AlertSink, createActivities, TrainingMetrics, webhookFromEnv, type ActivityDeps } from '../activities';
import type { Client } from '@temporalio/client';
import { persistNice } from '../checkpoint/persist-thread';
import { progressQuery } from '../workflows/definitions';
import { prepareStandby } from './standby';
import { CliError, EXIT } from './common';
import {
  connectClient,
  connectionOptions,
  explainConnectionError,
  probeTls,
  temporalSettings,
  type TemporalSettings,
} from './connection';

export interface WorkerOptions extends ActivityDeps {
  settings?: TemporalSettings;
  /** Identity shown in the Temporal UI (default: pid@host). */
  identity?: string;
  /**
   * Activities this worker runs at once (default DURABLE_TRAIN_SLOTS, else 1). Training is CPU-bound and synchronous in
   * tfjs: one process trains one chunk or replica at a time, and N processes train N replicas of a run in parallel.
   */
  slots?: number;
  /**
   * A workflow bundle made beforehand (bundleWorkflowCode's code, as a file), used instead of bundling the workflow
   * code at start (about 2.5 s of CPU). Default: DURABLE_TRAIN_WORKFLOW_BUNDLE; unset, the worker bundles its own.
   * It must be a bundle of this version's workflows (the test suite makes one per run and hands it to every worker).
   */
  workflowBundlePath?: string;
}

export const WORKFLOW_BUNDLE_ENV_VAR = 'DURABLE_TRAIN_WORKFLOW_BUNDLE';

import { slotsOption } from './worker-command';
import { backendIsAuto, useBackend } from '../training/backend';

let runtimeInstalled = false;
/**
 * SDK logs at WARN unless DURABLE_TRAIN_LOG_LEVEL says otherwise (TRACE, DEBUG, INFO, WARN, ERROR). With
 * DURABLE_TRAIN_SDK_METRICS_PORT set, the Temporal SDK's own worker metrics (task slots, poll and schedule latencies,
 * activity and workflow task outcomes, prefixed temporal_) are served in the Prometheus format on that second port
 * (host DURABLE_TRAIN_METRICS_HOST), at /metrics: the Rust core serves them, so they cannot share our port.
 */
function installRuntime(env = process.env): string | null {
  if (runtimeInstalled) return null;
  runtimeInstalled = true;
  const level = (env.DURABLE_TRAIN_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel;
  const port = env.DURABLE_TRAIN_SDK_METRICS_PORT?.trim();
  if (port && !/^\d{1,5}$/.test(port))
    throw new Error(`DURABLE_TRAIN_SDK_METRICS_PORT=${port}: expected a port number`);
  const bindAddress = port ? `${env.DURABLE_TRAIN_METRICS_HOST || '127.0.0.1'}:${port}` : null;
  try {
    Runtime.install({
      logger: new DefaultLogger(level),
      ...(bindAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress } } } } : {}),
    });
  } catch {
    // Already installed by the embedding program: keep its settings.
    return null;
  }
  return bindAddress ? `http://${bindAddress}/metrics` : null;
}

/**
 * Asks the run why its chunk was cut (its progress says pausing or stopping; otherwise it was cancelled). One client
 * per worker process, connected on first use; no answer within 5 s leaves the reason to the activity's fallback.
 */
function cutReasonQuery(settings: TemporalSettings): ActivityDeps['cutReasonOf'] {
  let client: Promise<Client> | null = null;
  return async (runId) => {
    // Same TLS, credentials and payload codecs as the worker: the progress it answers with is encrypted too.
    client ??= connectClient(settings);
    const progress = (await client).workflow.getHandle(runId).query(progressQuery);
    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000).unref());
    const p = await Promise.race([progress, timeout]);
    if (!p) return null;
    return p.status === 'stopping' ? 'stop' : p.status === 'pausing' ? 'pause' : 'cancel';
  };
}

export async function createWorker(
  opts: WorkerOptions = {},
): Promise<{ worker: Worker; connection: NativeConnection; sdkMetricsUrl: string | null }> {
  const sdkMetricsUrl = installRuntime();
  const settings = opts.settings ?? temporalSettings();
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect(connectionOptions(settings));
  } catch (err) {
    throw new CliError(
      explainConnectionError(err, settings) ??
        (await probeTls(settings)) ??
        `cannot reach Temporal at ${settings.address}: ${(err as Error).message}`,
      EXIT.unreachable,
    );
  }
  let worker: Worker;
  try {
    worker = await createWorkerOn(connection, settings, opts);
  } catch (err) {
    await connection.close();
    const explained = explainConnectionError(err, settings);
    throw explained ? new CliError(explained, EXIT.unreachable) : err;
  }
  return { worker, connection, sdkMetricsUrl };
}

/** Worker.create's workflow source: a prebuilt bundle file when one is named, else this package's workflows. */
function workflowCode(
  bundlePath: string | undefined,
): { workflowBundle: { codePath: string } } | { workflowsPath: string } {
  if (bundlePath) return { workflowBundle: { codePath: bundlePath } };
  return { workflowsPath: path.join(__dirname, '..', 'workflows', 'index.js') };
}

function createWorkerOn(
  connection: NativeConnection,
  settings: TemporalSettings,
  opts: WorkerOptions,
): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: settings.namespace,
    ...(settings.payloadCodecs
      ? {
          dataConverter: {
            payloadCodecs: settings.payloadCodecs,
            ...(settings.encryptFailures
              ? { failureConverterPath: path.join(__dirname, '..', 'codec', 'failure-converter.js') }
              : {}),
          },
        }
      : {}),
    taskQueue: settings.taskQueue,
    ...workflowCode(opts.workflowBundlePath ?? process.env[WORKFLOW_BUNDLE_ENV_VAR]),
    activities: createActivities({ cutReasonOf: cutReasonQuery(settings), ...runBackends(opts), ...opts }),
    // Every activity failure is bounded to what the server keeps, so its reason is never replaced by a size error.
    interceptors: { activity: [() => ({ inbound: new BoundedFailures() })] },
    ...(opts.identity ? { identity: opts.identity } : {}),
    // Training is CPU-bound: one chunk (or replica) at a time per worker process unless --slots says otherwise.
    maxConcurrentActivityTaskExecutions: opts.slots ?? slotsOption(undefined) ?? 1,
    // On shutdown, a running chunk is cancelled at once: it commits a checkpoint at its current step and hands it back.
    shutdownGraceTime: 0,
    shutdownForceTime: '2 minutes',
    // Heartbeats reach the server at most twice a second: live progress for `watch`, prompt pause/stop delivery, and a
    // retried attempt's first step seen within half a second.
    maxHeartbeatThrottleInterval: '500ms',
    defaultHeartbeatThrottleInterval: '500ms',
  });
}

/** DURABLE_TRAIN_FAILPOINT=kill-before-manifest:STEP: this worker SIGKILLs itself mid-commit (crash tests only). */
export function failpointFromEnv(env = process.env): WorkerOptions['beforeManifest'] {
  return killBeforeManifestFromEnv([process.pid], env);
}

export async function runWorker(opts: WorkerOptions = {}): Promise<void> {
  // A bad DURABLE_TRAIN_PERSIST_NICE stops the worker now, not a run at its first checkpoint.
  try {
    persistNice();
  } catch (err) {
    throw new CliError(`worker: ${(err as Error).message}`, EXIT.usage);
  }
  const settings = opts.settings ?? temporalSettings();
  opts = { beforeManifest: failpointFromEnv(), ...opts };
  const metrics = opts.metrics ?? new TrainingMetrics();
  const webhook = webhookFromEnv();
  const alerts = opts.alerts ?? new AlertSink({ url: webhook, counters: metrics });
  const slots = opts.slots ?? slotsOption(undefined) ?? 1;
  // Chunks train in supervised processes, one per slot, started now so that a first chunk finds its backend ready.
  const supervisor = opts.supervisor ?? trainerSupervisorFromEnv(slots, metrics);
  const { worker, connection, sdkMetricsUrl } = await createWorker({
    ...opts,
    settings,
    metrics,
    alerts,
    slots,
    supervisor,
    // Replicas train in the training processes too (isolated, restarted from memory); =0 keeps them in the worker.
    replicasInProcesses: opts.replicasInProcesses ?? process.env.DURABLE_TRAIN_REPLICA_PROCESS !== '0',
  });
  const metricsUrl = await serveMetrics(metrics);
  console.error(
    `durable-train worker: task queue ${settings.taskQueue} on ${settings.address} (${settings.namespace}), pid ${process.pid}, ${slots} slot(s)` +
      (metricsUrl ? `, metrics on ${metricsUrl}` : '') +
      (sdkMetricsUrl ? `, SDK metrics on ${sdkMetricsUrl}` : '') +
      (webhook ? ', alerts to the webhook' : ', no alert webhook (DURABLE_TRAIN_ALERT_WEBHOOK)'),
  );
  // A standby's spares load the data of the runs training elsewhere on the queue (cli/standby.ts).
  const standby: { client?: Promise<Client> } = {};
  const stopStandby = supervisor
    ? prepareStandby(() => (standby.client ??= connectClient(settings)), settings, supervisor)
    : null;
  try {
    await worker.run();
  } finally {
    stopStandby?.();
    await standby.client?.then((c) => c.connection.close()).catch(() => undefined);
    supervisor?.close();
    await connection.close();
  }
}

/**
 * Whether new runs train on a backend chosen for them, a small model's on wasm (training/backend-choice.ts): when the
 * worker chooses its backend itself (DURABLE_TRAIN_BACKEND unset), and what computes for a run can follow the run's
 * backend: training processes (which train chunks and replay drills one at a time), or a worker process with one
 * activity slot (its activities run one at a time, so it may switch backends for each).
 */
export function chooseBackends(slots: number, supervised: boolean, env = process.env): boolean {
  return backendIsAuto(env) && (supervised || slots === 1);
}

/** The backend switching a worker process that trains in itself may do for its activities (see chooseBackends). */
function runBackends(opts: WorkerOptions): Pick<ActivityDeps, 'useBackend' | 'chooseBackend'> {
  if (opts.supervisor || !chooseBackends(opts.slots ?? slotsOption(undefined) ?? 1, false)) return {};
  return { useBackend, chooseBackend: true };
}

/**
 * The worker's training processes: DURABLE_TRAIN_TRAINER_PROCESS=0 trains in the worker itself (no process isolation);
 * DURABLE_TRAIN_TRAINER_RETRIES (default 3) training-process deaths at one step fail the chunk as a crash loop;
 * DURABLE_TRAIN_TRAINER_SPARES (default 1, at most the slots) idle processes are kept ready to take over.
 */
export function trainerSupervisorFromEnv(
  slots: number,
  metrics: TrainingMetrics,
  env = process.env,
): TrainerSupervisor | undefined {
  if (env.DURABLE_TRAIN_TRAINER_PROCESS === '0') return undefined;
  const intEnv = (name: string, dflt: number, min: number, max: number): number => {
    const raw = env[name];
    const n = raw === undefined || raw === '' ? dflt : Number(raw);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new CliError(`worker: ${name} must be an integer from ${min} to ${max}, got ${raw}`, EXIT.usage);
    return n;
  };
  const retries = intEnv('DURABLE_TRAIN_TRAINER_RETRIES', 3, 1, 100);
  const spares = intEnv('DURABLE_TRAIN_TRAINER_SPARES', 1, 0, slots);
  return new TrainerSupervisor({
    spares,
    maxDeathsAtStep: retries,
    metrics,
    chooseBackend: chooseBackends(slots, true, env),
  });
}

/** Serves GET /metrics (Prometheus text) when DURABLE_TRAIN_METRICS_PORT is set; host from DURABLE_TRAIN_METRICS_HOST. */
async function serveMetrics(metrics: TrainingMetrics, env = process.env): Promise<string | null> {
  const port = env.DURABLE_TRAIN_METRICS_PORT;
  if (!port) return null;
  const host = env.DURABLE_TRAIN_METRICS_HOST || '127.0.0.1';
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(port), host, resolve);
  });
  server.unref();
  return `http://${host}:${port}/metrics`;
}
