// Failures after which a process's tfjs backend cannot be trusted: a wasm trap (memory access out of bounds,
// unreachable), an allocation that failed, out of memory. The process that hit one is discarded, never reused.
// A minimal check on the error's name and message (and its causes); the failure catalogue may refine it.
import { wasmGlobal } from './failpoints';

const POISON_MESSAGES = [
  /memory access out of bounds/i,
  /\bunreachable\b/i,
  /out of memory/i,
  /array buffer allocation failed/i,
  /cannot allocate memory/i,
  /failed to (grow|allocate) (the )?memory/i,
  /Aborted\(/,
];

export function isBackendPoisoning(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof wasmGlobal().RuntimeError) return true;
    const { name, message } = e as { name?: unknown; message?: unknown };
    if (name === 'RuntimeError') return true;
    if (typeof message === 'string' && POISON_MESSAGES.some((re) => re.test(message))) return true;
  }
  return false;
}
