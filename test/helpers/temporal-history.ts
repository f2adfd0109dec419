// A run's history as users read it with the `temporal` CLI, to check what the server stores.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolveTemporalCli } from '../../cli/tools';
import type { TestCluster } from './cluster';

/** The history as `temporal workflow show --output json` prints it (the same tool users have). */
export function temporalHistory(cluster: TestCluster, runId: string): string {
  const temporal = resolveTemporalCli();
  assert.equal(temporal.kind, 'path', 'the temporal CLI (npm run setup)');
  const r = spawnSync(
    temporal.kind === 'path' ? temporal.path : 'temporal',
    ['workflow', 'show', '--workflow-id', runId, '--output', 'json', '--address', cluster.server.address],
    { encoding: 'utf8', env: { ...process.env, TEMPORAL_CONFIG_FILE: '/nonexistent' } },
  );
  assert.equal(r.status, 0, r.stderr);
  // Payload data is base64 in that JSON: add every base64 string decoded, so a clear-text value is found either way.
  const decoded: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      if (v.length >= 8 && /^[A-Za-z0-9+/]+={0,2}$/.test(v)) decoded.push(Buffer.from(v, 'base64').toString('utf8'));
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(JSON.parse(r.stdout));
  return `${r.stdout}\n${decoded.join('\n')}`;
}
