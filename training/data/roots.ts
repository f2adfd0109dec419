// Where a worker may read datasets and model files from: DURABLE_TRAIN_DATA_ROOTS (directories separated by the
// platform's path delimiter, ':' on Linux), else the worker's working directory and the run's checkpoint store. A
// path is judged after every symlink is resolved, so a link inside a root to /etc/passwd is refused like the path
// itself; the refusal names the path and the roots, never anything read from the file.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { DatasetError } from './errors';

/** The allowed directories: the environment's list, else `defaults` (the working directory and the stores). */
export function dataRoots(defaults: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env.DURABLE_TRAIN_DATA_ROOTS;
  const list = raw && raw.trim() ? raw.split(path.delimiter) : defaults;
  return [
    ...new Set(
      list
        .map((r) => r.trim())
        .filter(Boolean)
        .map((r) => path.resolve(r)),
    ),
  ];
}

const real = (p: string) => fsp.realpath(p).catch(() => path.resolve(p));

/**
 * Throws a DatasetError (naming `field`) when `file`, symlinks resolved, is not inside one of `roots`. A file that does
 * not exist is judged by its path as written (reading it then fails with "does not exist").
 */
export async function checkDataRoot(file: string, roots: string[], field: string, url: string): Promise<void> {
  const target = await real(file);
  const allowed = await Promise.all(roots.map(real));
  const inside = (root: string) => {
    const rel = path.relative(root, target);
    return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
  };
  if (allowed.some(inside)) return;
  throw new DatasetError(
    field,
    `${url} resolves to ${target}, outside the directories this worker reads data and models from ` +
      `(${allowed.join(', ')}); set DURABLE_TRAIN_DATA_ROOTS on the worker to allow another directory`,
  );
}
