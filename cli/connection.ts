// Where the CLI and the worker find Temporal. Defaults to the embedded dev server.
import { Client, Connection } from '@temporalio/client';
import { CliError, EXIT } from './common';

export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
  /** Web UI base URL, when known (the dev server's, or DURABLE_TRAIN_UI_URL). */
  uiUrl: string | null;
}

export function temporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  const address = env.TEMPORAL_ADDRESS || 'localhost:7233';
  const embedded = !env.TEMPORAL_ADDRESS;
  return {
    address,
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: env.DURABLE_TRAIN_TASK_QUEUE || 'durable-train',
    uiUrl: env.DURABLE_TRAIN_UI_URL || (embedded ? 'http://localhost:8233' : null),
  };
}

export async function connectClient(settings = temporalSettings()): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: settings.address, connectTimeout: 5000 });
  } catch (err) {
    throw new CliError(
      `cannot reach Temporal at ${settings.address} (${(err as Error).message}). ` +
        `Start one with \`durable-train dev-server\` or set TEMPORAL_ADDRESS.`,
      EXIT.unreachable,
    );
  }
  return new Client({ connection, namespace: settings.namespace });
}

export function runUrl(settings: TemporalSettings, runId: string): string | null {
  return settings.uiUrl
    ? `${settings.uiUrl}/namespaces/${settings.namespace}/workflows/${encodeURIComponent(runId)}`
    : null;
}
