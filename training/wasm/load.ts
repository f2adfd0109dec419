// Instances of this folder's WebAssembly modules (each built into NAME-module.ts from NAME.wat by scripts/build-wasm.js).

/** Node's WebAssembly namespace (the DOM typings that declare it are not in this project's lib). */
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

const compiled = new Map<string, object>();

/** A new instance of the module whose bytes are `base64` (compiled once per process): its exports. */
export function instantiate<Exports>(base64: string): Exports {
  let module = compiled.get(base64);
  if (!module) {
    module = new wasm.Module(Buffer.from(base64, 'base64'));
    compiled.set(base64, module);
  }
  return new wasm.Instance(module).exports as Exports;
}
