// The per-worker limit on a model's training memory (spec/model-fit.ts estimates it): DURABLE_TRAIN_MAX_MODEL_BYTES,
// else half the machine's memory, and at most 2 GiB on the wasm backend, whose heap is a 32-bit wasm memory that a
// larger model overruns ("memory access out of bounds") and leaves unusable for every run in the process.
import { totalmem } from 'os';

const WASM_HEAP_BYTES = 2 * 2 ** 30;

export function maxModelBytes(backend: string, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.DURABLE_TRAIN_MAX_MODEL_BYTES;
  if (raw !== undefined && raw.trim() !== '') {
    const n = Number(raw);
    if (!(Number.isFinite(n) && n > 0))
      throw new Error(`DURABLE_TRAIN_MAX_MODEL_BYTES=${raw} is not a positive number of bytes`);
    return n;
  }
  const half = totalmem() / 2;
  return backend === 'wasm' ? Math.min(half, WASM_HEAP_BYTES) : half;
}
