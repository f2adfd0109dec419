// What a worker's output says about its training processes (see activities/trainer-process/supervisor.ts).
import type { WorkerProcess } from './cluster';

/** Training processes the worker has started and that are still alive, oldest first. */
export function trainerPids(w: WorkerProcess): number[] {
  const started = [...w.output().matchAll(/training process (\d+) started/g)].map((m) => Number(m[1]));
  return started.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
}

/** The training process that runs `runId` now (the worker says when a process takes a run), or NaN. */
export function trainerOf(w: WorkerProcess, runId: string): number {
  const taken = [...w.output().matchAll(/training process (\d+) takes run (\S+)/g)].filter((m) => m[2] === runId);
  return Number(taken[taken.length - 1]?.[1] ?? NaN);
}
