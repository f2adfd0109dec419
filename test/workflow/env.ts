// The in-process workflow tests' environment: a real Temporal server (the pinned CLI that setup installs, with the
// search attributes asked for) and the real workflow bundle (one per mocha run), made once per describe block and torn down after it.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, type WorkflowBundle } from '@temporalio/worker';
import { resolveTemporalCli } from '../../cli/tools';
import { sharedWorkflowBundle } from '../helpers/workflow-bundle';

export interface WorkflowEnv {
  readonly env: TestWorkflowEnvironment;
  readonly bundle: WorkflowBundle;
}

/** Registers the before/after hooks of the calling describe block; read the fields inside tests only. */
type ServerOptions = NonNullable<NonNullable<Parameters<typeof TestWorkflowEnvironment.createLocal>[0]>['server']>;

export function useWorkflowEnv(opts: { searchAttributes?: ServerOptions['searchAttributes'] } = {}): WorkflowEnv {
  let env: TestWorkflowEnvironment | undefined;
  let bundle: WorkflowBundle | undefined;
  before(async function () {
    const cli = resolveTemporalCli();
    if (cli.kind !== 'path')
      throw new Error('the Temporal CLI is missing: run `npm run setup` (installs it into .tools/)');
    try {
      Runtime.install({ logger: new DefaultLogger('WARN') });
    } catch {
      // A runtime is installed already (by another test in this process): keep its settings.
    }
    [env, bundle] = await Promise.all([
      TestWorkflowEnvironment.createLocal({
        server: {
          executable: { type: 'existing-path', path: cli.path },
          ...(opts.searchAttributes ? { searchAttributes: opts.searchAttributes } : {}),
        },
      }),
      sharedWorkflowBundle().then(({ code }) => ({ code })),
    ]);
  });
  after(async function () {
    await env?.teardown();
  });
  return {
    get env() {
      if (!env) throw new Error('the workflow test environment is not started (use it inside a test)');
      return env;
    },
    get bundle() {
      if (!bundle) throw new Error('the workflow bundle is not built (use it inside a test)');
      return bundle;
    },
  };
}
