// The checkpoint layer: named byte arrays + JSON state, committed durably, verified on restore. The one barrel:
// code outside checkpoint/ imports from here only. The stores themselves live in storage/ (re-exported here).
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
  openStore,
  parseStoreUrl,
  type StorageLocation,
  FsCheckpointStore,
  type S3StoreOptions,
} from '../storage';
export {
  AUTO_FULL_VERIFY_MAX_BYTES,
  CheckpointManager,
  type CheckpointManagerOptions,
  type CommitOptions,
  type GarbageReport,
  type RetentionVerify,
} from './manager';
export { formatProblems } from './problems';
export { storedPieces } from './rows';
export {
  canonicalManifest,
  CHECKPOINT_KEY_ENV,
  CheckpointKeys,
  checkpointKeysFromEnv,
  type SignatureProblem,
} from './signing';
export { canonicalJson, checkpointId, manifestBodyHash, sha256Hex } from './codec';
