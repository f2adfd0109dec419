// A registered dataset whose validation split disagrees with train and test, for the tests that check that choices
// follow the validation split.
import { Prng } from '../../training/prng';

/**
 * One feature; train and test labels say x > 0, validation labels say the opposite. Training makes the model ever more
 * sure of x > 0: test loss falls epoch after epoch while validation loss rises, so the best epoch by validation is the
 * first and the best by test the last.
 */
export function opposedData(seed: number) {
  const rng = Prng.fromSeed(seed);
  const split = (n: number, flip: boolean) => {
    const x = new Float32Array(n);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      x[i] = rng.nextFloat() * 2 - 1;
      y[i] = x[i] > 0 !== flip ? 1 : 0;
    }
    return { x, y, n };
  };
  return {
    featureShape: [1],
    task: 'classification' as const,
    classes: ['neg', 'pos'],
    train: split(64, false),
    validation: split(32, true),
    test: split(32, false),
    fingerprint: `opposed-${seed}`,
  };
}
