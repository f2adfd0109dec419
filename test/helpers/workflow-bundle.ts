// One workflow bundle per mocha run. Bundling the workflow code (webpack) takes about 2.5 s of CPU; every worker a
// test starts (spawned worker processes, `durable-train worker` / `main` run as a user would, in-process workers)
// reuses this one instead of bundling its own: in process as `workflowBundle: { code }`, in child processes through
// DURABLE_TRAIN_WORKFLOW_BUNDLE (the file's path), which the worker reads in place of bundling at start.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';

/** cli/worker.ts's WORKFLOW_BUNDLE_ENV_VAR (not imported: that module loads the activities and tfjs). */
const WORKFLOW_BUNDLE_ENV_VAR = 'DURABLE_TRAIN_WORKFLOW_BUNDLE';

export interface SharedBundle {
  code: string;
  codePath: string;
}

let shared: Promise<SharedBundle> | null = null;

/**
 * The bundle of this checkout's dist/workflows, made on first use and kept for the rest of the mocha process; its path
 * is put in process.env (so every process started after inherits it) and removed when the process exits.
 */
export function sharedWorkflowBundle(): Promise<SharedBundle> {
  shared ??= (async () => {
    const { code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../workflows'),
      logger: new DefaultLogger('WARN'),
    });
    const sha = crypto.createHash('sha256').update(code).digest('hex').slice(0, 12);
    const codePath = path.join(os.tmpdir(), `dt-workflow-bundle-${process.pid}-${sha}.js`);
    fs.writeFileSync(codePath, code);
    process.once('exit', () => fs.rmSync(codePath, { force: true }));
    process.env[WORKFLOW_BUNDLE_ENV_VAR] = codePath;
    return { code, codePath };
  })();
  return shared;
}
