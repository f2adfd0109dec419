// Finds the Temporal CLI binary (dev server). Order: TEMPORAL_CLI_PATH, PATH, the project's
// .tools/bin (installed by `npm run setup`), then the SDK's own download (needs internet).
import * as fs from 'node:fs';
import * as path from 'node:path';

export const PROJECT_ROOT = path.resolve(
  __dirname,
  '..',
  path.basename(path.resolve(__dirname, '..')) === 'dist' ? '..' : '.',
);

export type TemporalCliSource =
  { kind: 'path'; path: string; from: 'TEMPORAL_CLI_PATH' | 'PATH' | 'tools-dir' } | { kind: 'sdk-download' };

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

export function findOnPath(name: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export function resolveTemporalCli(env: NodeJS.ProcessEnv = process.env, root = PROJECT_ROOT): TemporalCliSource {
  const fromEnv = env.TEMPORAL_CLI_PATH;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) {
      throw new Error(`TEMPORAL_CLI_PATH=${fromEnv} is not an executable file`);
    }
    return { kind: 'path', path: fromEnv, from: 'TEMPORAL_CLI_PATH' };
  }
  const onPath = findOnPath('temporal', env.PATH);
  if (onPath) return { kind: 'path', path: onPath, from: 'PATH' };
  const tools = path.join(root, '.tools', 'bin', 'temporal');
  if (isExecutable(tools)) return { kind: 'path', path: tools, from: 'tools-dir' };
  return { kind: 'sdk-download' };
}

export function resolveToolBinary(name: string, root = PROJECT_ROOT): string | undefined {
  const tools = path.join(root, '.tools', 'bin', name);
  if (isExecutable(tools)) return tools;
  return findOnPath(name);
}
