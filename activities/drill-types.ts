// The drill's contract: what the drill workflow asks of its activities and what a drill reports. Types only (the
// workflow imports them); small values only, never tensors or bytes.
import type { RunSpec } from '../spec/types';

export interface DrillInput {
  /** The run whose recovery is rehearsed. */
  runId: string;
  /** The run's spec (the one its checkpoints were trained with), as the CLI read it from the run. */
  spec: RunSpec;
  /** The checkpoint to restore; default: the newest intact one that has a later checkpoint to compare against. */
  checkpointId?: string | null;
  /** Replay exactly this many steps (1..chunkSteps): the compared checkpoint is the one stored that many steps later. */
  steps?: number | null;
  /** Set when a Temporal Schedule started this drill: the drill removes that schedule once the run has ended. */
  scheduleId?: string | null;
}

/** One thing a drill found different between the replay and the stored checkpoint. */
export interface DrillDifference {
  /** Which checkpoint: the restored one (it does not verify) or the compared one. */
  checkpointId: string;
  /** The blob (variable or optimizer slot) by its stable name, or `state.<field>` for the JSON training state. */
  name: string;
  /** What differs, in one line (sha256 mismatch, first differing element with both values, ...). */
  reason: string;
}

export interface DrillReport {
  runId: string;
  /** The checkpoint restored (null when the run has none to drill). */
  checkpoint: { id: string; step: number } | null;
  /** The later stored checkpoint the replay is compared with, bit for bit. */
  compared: { id: string; step: number } | null;
  /** Seconds to load, verify and restore the checkpoint into a fresh trainer. */
  restoreSeconds: number;
  /** Steps trained from `checkpoint` to `compared` (the steps replayed, `fromStep`..`toStep`). */
  stepsReplayed: number;
  fromStep: number;
  toStep: number;
  /** Blobs compared bitwise (weights, optimizer slots, counters, data order). */
  blobsCompared: number;
  verified: boolean;
  /** Empty when verified. */
  differences: DrillDifference[];
  /** Damaged checkpoints passed over while choosing the default one to restore. */
  skipped: Array<{ id: string; reason: string }>;
  /** The spec given is not the one that wrote the restored checkpoint (its fingerprint differs). */
  specChanged: boolean;
  backend: string;
  /** When the drill finished (ISO). */
  at: string;
}

/** What the drill workflow returns, and what `drill --list` shows. */
export interface DrillResult extends DrillReport {
  drillId: string;
  /** The run was no longer running when the drill ended (its progress could not record the drill). */
  runEnded: boolean;
  /** Whether an alert was delivered for a failed drill (null: none was needed). */
  alerted: boolean | null;
  /** Set when the drill removed its own schedule because the run has ended. */
  scheduleRemoved: boolean;
}

/** The drill's outcome as the run's progress shows it (signalled to a running training workflow). */
export interface LastDrill {
  drillId: string;
  at: string;
  verified: boolean;
  checkpointId: string | null;
  comparedId: string | null;
  stepsReplayed: number;
  /** The first difference, in one line, when the drill failed. */
  problem: string | null;
}

export interface DrillActivities {
  runDrill(input: DrillInput): Promise<DrillReport>;
  /** Deletes a drill schedule; true if it existed. */
  removeDrillSchedule(input: { scheduleId: string }): Promise<boolean>;
}

/** Failure types of the drill: the input names something that does not exist or cannot be drilled. */
export const DrillFailureTypes = {
  NoLaterCheckpoint: 'NoLaterCheckpoint',
  NoCheckpoint: 'NoCheckpoint',
} as const;

/** The id of the Schedule that drills a run. */
export const drillScheduleId = (runId: string) => `drill-${runId}`;
