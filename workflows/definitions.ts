// Signals, updates and queries of the training workflow. Defined once here; the CLI imports them.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { LastDrill } from '../activities/drill-types';
import type { RunProgress } from './progress';

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const stopSignal = defineSignal('stop');
/** Sets the learning rate from the next step on; returns the value applied. Validated (finite, > 0, <= 10). */
export const setLearningRateUpdate = defineUpdate<number, [number]>('setLearningRate');
export const progressQuery = defineQuery<RunProgress>('progress');

export const TRAINING_WORKFLOW = 'trainingWorkflow';

/** A recovery drill's outcome, sent by the drill workflow to a running training workflow (recorded in progress). */
export const drillSignal = defineSignal<[LastDrill]>('drillResult');
export const DRILL_WORKFLOW = 'drillWorkflow';
