// The checkpoint layer: named byte arrays + JSON state, committed durably, verified on restore.
export * from './types';
export * from './errors';
export {
  openStore,
  FsCheckpointStore,
  S3CheckpointStore,
  type CheckpointStore,
  type S3StoreOptions,
  type StoredObjectInfo,
  type WriteAtomicOptions,
} from './store';
export { CheckpointManager, describeProblems, type CheckpointManagerOptions, type CommitOptions } from './manager';
export { canonicalJson, checkpointId, manifestBodyHash, sha256Hex } from './codec';
