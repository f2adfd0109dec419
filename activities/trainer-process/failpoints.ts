// Test-only faults, named by DURABLE_TRAIN_FAILPOINT (crash tests and the recovery bench):
//   kill-before-manifest:STEP  the worker SIGKILLs itself in the middle of the first checkpoint commit at or after
//                              STEP, after its blobs are written and before its manifest
//   kill-trainer:RUN:STEP      the training process SIGKILLs itself when run RUN reaches step STEP (every time)
//   poison-backend:RUN:STEP    run RUN hits a wasm trap at step STEP: the process's backend is unusable from then on
//   kill-replica:RUN:R:STEP    the training process SIGKILLs itself when replica R of distributed run RUN trains step
//                              STEP in the round's first attempt (the replica's restart, a later attempt, goes through)
//   kill-trainer-persisting:RUN:STEP
//                              the training process SIGKILLs itself during the background persist of run RUN's first
//                              checkpoint at or after STEP, once its blobs are written and training has gone on past
//                              it, before its manifest; not in a chunk restarted after a death (that one goes through)
export interface TrainerFault {
  kind: 'kill-trainer' | 'poison-backend' | 'kill-trainer-persisting';
  runId: string;
  step: number;
}

const FORMS =
  'kill-before-manifest:STEP, kill-trainer:RUN:STEP, poison-backend:RUN:STEP, kill-trainer-persisting:RUN:STEP or ' +
  'kill-replica:RUN:R:STEP';

/** The kill-replica failpoint, or null. */
export function replicaFaultFromEnv(env = process.env): { runId: string; replica: number; step: number } | null {
  const m = /^kill-replica:([^:]+):(\d+):(\d+)$/.exec(env.DURABLE_TRAIN_FAILPOINT ?? '');
  return m ? { runId: m[1], replica: Number(m[2]), step: Number(m[3]) } : null;
}

export function trainerFaultFromEnv(env = process.env): TrainerFault | null {
  const fp = env.DURABLE_TRAIN_FAILPOINT;
  const m = fp ? /^(kill-trainer|poison-backend|kill-trainer-persisting):([^:]+):(\d+)$/.exec(fp) : null;
  return m ? { kind: m[1] as TrainerFault['kind'], runId: m[2], step: Number(m[3]) } : null;
}

/**
 * The kill-trainer-persisting failpoint as a `beforeManifest` hook of a training process: waits (up to 10 s) until
 * the run has trained past the checkpoint being persisted, then SIGKILLs this process. Undefined for other forms.
 */
export function killWhilePersistingFromEnv(o: {
  /** The step the run's trainer has reached in this process. */
  stepOf: (runId: string) => number | undefined;
  /** Whether the run's chunk here is a restart after a death. */
  restarted: (runId: string) => boolean;
  env?: NodeJS.ProcessEnv;
}): ((step: number, runId: string) => Promise<void>) | undefined {
  const fault = trainerFaultFromEnv(o.env);
  if (fault?.kind !== 'kill-trainer-persisting') return undefined;
  return async (step, runId) => {
    if (runId !== fault.runId || step < fault.step || o.restarted(runId)) return;
    for (let waited = 0; (o.stepOf(runId) ?? 0) <= step && waited < 10_000; waited += 20)
      await new Promise((r) => setTimeout(r, 20));
    console.error(
      `durable-train training process: failpoint: killing myself while persisting step ${step} ` +
        `(training reached step ${o.stepOf(runId)})`,
    );
    process.kill(process.pid, 'SIGKILL');
  };
}

/**
 * The kill-before-manifest failpoint as a `beforeManifest` hook that SIGKILLs `pids` (the worker, and the training
 * process when the commit happens there), or undefined when it is not set.
 */
export function killBeforeManifestFromEnv(pids: number[], env = process.env): ((step: number) => void) | undefined {
  const fp = env.DURABLE_TRAIN_FAILPOINT;
  if (!fp || trainerFaultFromEnv(env) || replicaFaultFromEnv(env)) return undefined;
  const m = /^kill-before-manifest:(\d+)$/.exec(fp);
  if (!m) throw new Error(`DURABLE_TRAIN_FAILPOINT=${fp}: expected ${FORMS}`);
  const atStep = Number(m[1]);
  return (step) => {
    if (step < atStep) return;
    console.error(`durable-train worker: failpoint: killing myself during the commit of step ${step}`);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
  };
}

/** The wasm trap tfjs-backend-wasm throws on an out-of-bounds access, as a poisoned backend would. */
export const wasmTrap = (): Error => new (wasmGlobal().RuntimeError)('memory access out of bounds');

/** Node's WebAssembly namespace (the DOM typings that declare it are not in this project's lib). */
export const wasmGlobal = (): { RuntimeError: new (message: string) => Error } =>
  (globalThis as unknown as { WebAssembly: { RuntimeError: new (message: string) => Error } }).WebAssembly;
