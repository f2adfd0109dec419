// Epochs as people count them, in every view (status, watch's progress bar, checkpoints list, the report): 1-based,
// the epoch the latest step belongs to. Step 0 is before epoch 1's first step, so it shows epoch 1; the last step of
// epoch 2 shows 2, the step after it 3. (Internally the trainer counts completed epochs, starting at 0.)

/** The 1-based epoch of `step` with `stepsPerEpoch` steps in an epoch. */
export function epochOfStep(step: number, stepsPerEpoch: number): number {
  if (!(stepsPerEpoch > 0)) return 1;
  return Math.max(1, Math.ceil(step / stepsPerEpoch));
}

/** The same from the trainer's count of completed epochs, when the steps per epoch are not at hand: a step that
 * ends an epoch has just completed it (`atEpochEnd`), any other is inside the next one. */
export function epochOfCompleted(completed: number, atEpochEnd: boolean): number {
  return Math.max(1, atEpochEnd ? completed : completed + 1);
}

/** Whether a checkpoint was taken right at an epoch end's evaluation (validation, or test for runs without one). */
export const evaluatedHere = (m: Record<string, number>): boolean =>
  m.valLoss !== undefined || m.testLoss !== undefined;
