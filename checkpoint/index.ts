// The checkpoint layer: named byte arrays + JSON state, committed durably, verified on restore. The one barrel:
// code outside checkpoint/ imports from here only.
export * from './types';
export * from './errors';
export {
  assertKey,
  CheckpointConflictError,
  CheckpointNotFoundError,
  CheckpointStoreError,
  StorageUnavailableError,
  TEMP_PREFIX,
  type CheckpointStore,
  type StorageFailureDetails,
  type StoredObjectInfo,
  type WriteAtomicOptions,
} from './store/interface';
export { openStore, parseStoreUrl, s3OptionsFromEnv, type StorageLocation } from './store/open';
export { FsCheckpointStore } from './store/fs';
export { S3CheckpointStore, type S3StoreOptions } from './store/s3';
export { CheckpointManager, type CheckpointManagerOptions, type CommitOptions } from './manager';
export { formatProblems } from './problems';
export {
  canonicalManifest,
  CHECKPOINT_KEY_ENV,
  CheckpointKeys,
  checkpointKeysFromEnv,
  type SignatureProblem,
} from './signing';
export { canonicalJson, checkpointId, manifestBodyHash, sha256Hex } from './codec';
