// Activity contract of distributed rounds (spec.distributed). Types only: the workflow imports this file.
// Everything here travels in Temporal payloads: ids and small summaries, never tensors.
import type { RunSpec } from '../spec/types';
import type { CheckpointPosition, CheckpointRef, ChunkSummary, Recovery } from './types';

export interface TrainReplicaInput {
  runId: string;
  spec: RunSpec;
  /** The round's global checkpoint (null for the first round of a fresh run). */
  from: CheckpointRef | null;
  /** Which replica (0-based): its shard of each epoch, its inner optimizer slots, its random stream. */
  replica: number;
  /** Round number (0-based since the run started): for names and summaries only. */
  round: number;
  /** Steps to train in this round (the workflow cuts rounds at epoch ends). */
  steps: number;
  /** A learning rate set by the user, applied before the first step. */
  learningRateOverride?: number | null;
}

export interface ReplicaResult {
  replica: number;
  /** The global checkpoint the replica started from: the round's, or the one it fell back to (see `recovery`). */
  start: CheckpointRef | null;
  /** Set when the round's checkpoint was damaged or missing and the replica started from an earlier one. */
  recovery: Recovery | null;
  /** The replica's trained state (weights, its slots, its PRNG state), a checkpoint of the replica's own run id. */
  checkpoint: CheckpointPosition;
  fromStep: number;
  step: number;
  stepsRun: number;
  loss: number | null;
  accuracy: number | null;
  samplesPerSec: number;
  trainMs: number;
  commitMs: number;
  /** Attempt that produced the result (> 1: the replica was retried, e.g. after its worker died). */
  attempt: number;
  /** pid@host of the worker process that trained it. */
  worker: string;
  /** True when an earlier attempt had already committed this result and it was reused as it is. */
  reused: boolean;
}

export interface SyncReplicasInput {
  runId: string;
  spec: RunSpec;
  /** The round's global checkpoint (null for the first round of a fresh run). */
  from: CheckpointRef | null;
  round: number;
  /** Every replica's result, in replica order. */
  results: ReplicaResult[];
}

/** The sync's summary is a chunk summary (the workflow records rounds like chunks) plus how long the sync took. */
export interface RoundSummary extends ChunkSummary {
  round: number;
  /** Load of the replicas' results, combination, epoch end and commit of the round checkpoint. */
  syncMs: number;
}

/** Heartbeat details of trainReplica: `status`/`watch` read them for per-replica progress. */
export interface ReplicaHeartbeat {
  replica: number;
  round: number;
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  samplesPerSec: number;
}

export interface ReplicaActivities {
  trainReplica(input: TrainReplicaInput): Promise<ReplicaResult>;
  syncReplicas(input: SyncReplicasInput): Promise<RoundSummary>;
}
