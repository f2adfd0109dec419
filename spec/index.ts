// The run spec: one zod schema (./schema) gives the types, defaults, messages and JSON Schema; ./catalog and
// ./helpers are zod-free for code that must stay light (the workflow sandbox).
export * from './catalog';
export * from './helpers';
export * from './schema';
export * from '../storage/url';
