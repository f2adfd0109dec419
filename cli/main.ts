// The main job (`npm start`): the embedded dev server, a worker, and the default MNIST CNN run,
// watched with a progress bar. Ctrl-C stops everything without losing the run; run it again to resume.
import type { Client } from '@temporalio/client';
import type { RunResult } from '../workflows/progress';
import { EXIT, loadSpecFile, portOption, projectPath, runIdArg, type Out } from './common';
import { datasetLabel, modelLabel } from '../spec/labels';
import { connectClient, runUrl, temporalSettings } from './connection';
import { DEV_SERVER_OPTIONS, startDevServer, type DevServer } from './dev-server';
import { describeResult, startRun } from './start';
import { watchRun } from './watch';
import { managerForRun } from './checkpoints';
import type { RunSpec } from '../spec';
import { defineCommand } from './command';

export interface MainOptions {
  specFile?: string;
  runId?: string;
  /** Embedded dev server ports and SQLite file (defaults 7233, 8233, .data/temporal.sqlite). */
  port?: number;
  uiPort?: number;
  db?: string;
}

/** The backend the run's newest checkpoint was written on, or null (no checkpoints, or the store cannot say). */
async function backendOfLatestCheckpoint(spec: RunSpec, runId: string): Promise<string | null> {
  try {
    const manager = await managerForRun(null, runId, spec.checkpoint.storage);
    const newest = (await manager.list()).filter((c) => c.valid !== false).pop();
    return newest ? (await manager.readManifest(newest.id)).backend.name : null;
  } catch {
    return null;
  }
}

export async function mainCommand(out: Out, opts: MainOptions = {}): Promise<number> {
  let settings = temporalSettings();
  const specFile = opts.specFile ?? projectPath('examples', 'mnist-cnn.json');
  const spec = loadSpecFile(specFile);
  const runId = opts.runId ?? 'mnist-cnn-default';
  let server: DevServer | null = null;
  // No profile or variable names a cluster: start the embedded dev server (plain text, on localhost).
  if (settings.embedded) {
    process.stderr.write(`starting the Temporal dev server (SQLite: ${opts.db ?? '.data/temporal.sqlite'})...\n`);
    const port = opts.port ?? 7233;
    server = await startDevServer({ port, uiPort: opts.uiPort ?? port + 1000, db: opts.db });
    settings = { ...settings, address: server.address, uiUrl: server.uiUrl, tls: undefined, apiKey: undefined };
    process.stderr.write(`Temporal dev server at ${server.address}, Web UI ${server.uiUrl}\n`);
  }
  // A run resumed from checkpoints keeps their backend (exact resume holds on one backend): an interrupted run of
  // an older `npm start` on wasm is not refused because this machine has the native backend now.
  const resumed = await backendOfLatestCheckpoint(spec, runId);
  if (resumed && !process.env.DURABLE_TRAIN_BACKEND) {
    process.env.DURABLE_TRAIN_BACKEND = resumed;
    process.stderr.write(`run ${runId} has checkpoints on the ${resumed} backend: its worker trains on ${resumed}\n`);
  }
  // The worker's code is loaded here, not when the CLI starts (cli/worker-command.ts says why).
  const { createWorker } = await import('./worker');
  const { worker, connection } = await createWorker({ settings });
  const workerRun = worker.run();
  let client: Client | null = null;
  const abort = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write('\nstopping: the running chunk commits a checkpoint; `npm start` resumes the run\n');
    abort.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: RunResult | null = null;
  try {
    client = await connectClient(settings);
    const previous = await client.workflow
      .getHandle(runId)
      .describe()
      .catch(() => null);
    if (previous?.status.name === 'COMPLETED') {
      const done = (await client.workflow.getHandle(runId).result()) as RunResult;
      process.stderr.write(`run ${runId} already completed; \`npm start -- --run-id NEW\` trains another\n`);
      out.emit({ runId, result: done }, () => describeResult(done));
      return EXIT.ok;
    }
    const { attached } = await startRun(client, settings, { spec, runId, attach: true });
    const url = runUrl(settings, runId);
    process.stderr.write(
      `${attached ? 'resuming' : 'started'} run ${runId} (${modelLabel(spec.model)} on ${datasetLabel(spec.dataset)}, ${spec.epochs} epochs)\n`,
    );
    if (url) process.stderr.write(`Web UI: ${url}\n`);
    result = await watchRun(client, out, runId, { signal: abort.signal });
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await workerRun.catch((err) => process.stderr.write(`worker: ${String(err)}\n`));
    await connection.close();
    await client?.connection.close();
    if (server) await server.stop();
  }
  if (interrupted) process.stderr.write(`run ${runId} is saved; run \`npm start\` again to resume it\n`);
  return result || interrupted ? EXIT.ok : EXIT.check;
}

export const mainDefinition = defineCommand({
  name: 'main',
  summary:
    'what `npm start` runs: dev server (unless `TEMPORAL_ADDRESS` is set), a worker, the run, a progress bar; Ctrl-C stops all, running it again resumes',
  options: [
    { name: 'spec', value: 'FILE', description: 'the run spec (default examples/mnist-cnn.json)' },
    { name: 'run-id', value: 'ID', description: 'the run id (default mnist-cnn-default)' },
    ...DEV_SERVER_OPTIONS,
  ],
  async run({ opts, out }) {
    return mainCommand(out, {
      specFile: opts.spec,
      runId: opts['run-id'] === undefined ? undefined : runIdArg(opts['run-id']),
      port: opts.port ? portOption(opts.port, 'port', 7233) : undefined,
      uiPort: opts['ui-port'] ? portOption(opts['ui-port'], 'ui-port', 8233) : undefined,
      db: opts.db,
    });
  },
});
