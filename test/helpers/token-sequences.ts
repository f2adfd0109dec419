// Integer token sequences for the converted Keras text classifier (test/fixtures/keras/lstm-text: Embedding(50, 8),
// LSTM(12), Dense(2, softmax)): rows of 20 token ids in [0, 50), class 1 when tokens 0-9 ("positive words") outnumber
// tokens 10-19 ("negative words"), else 0; rows with as many of each are not drawn. A registered dataset: file
// datasets are standardised per column, which would turn token ids into fractions an Embedding cannot look up.
import { Prng } from '../../training/prng';
import { register, type RegisteredData } from '../../training/registry';

export const SEQUENCE_LENGTH = 20;
export const VOCABULARY = 50;
export const TOKEN_DATASET = 'token-sequences';

/** `n` rows drawn from `rng`: x as n * 20 token ids (float32, as every feature is), y the class. */
function rows(rng: Prng, n: number): { x: Float32Array; y: Int32Array; n: number } {
  const x = new Float32Array(n * SEQUENCE_LENGTH);
  const y = new Int32Array(n);
  for (let i = 0; i < n;) {
    let balance = 0;
    for (let t = 0; t < SEQUENCE_LENGTH; t++) {
      const token = rng.nextUint32() % VOCABULARY;
      x[i * SEQUENCE_LENGTH + t] = token;
      if (token < 10) balance++;
      else if (token < 20) balance--;
    }
    if (balance === 0) continue; // redrawn: a tie has no class
    y[i++] = balance > 0 ? 1 : 0;
  }
  return { x, y, n };
}

/** Train and test rows from one data seed (not the run's seed: every run of the same sizes sees the same rows). */
export function tokenSequences(train: number, test: number, dataSeed = 2026): RegisteredData {
  const rng = Prng.fromSeed(dataSeed);
  return {
    featureShape: [SEQUENCE_LENGTH],
    task: 'classification',
    classes: ['negative', 'positive'],
    train: rows(rng, train),
    test: rows(rng, test),
    fingerprint: `token-sequences-${dataSeed}-${train}-${test}`,
  };
}

/** The rows the end-to-end test trains on (test/helpers/keras-worker.ts registers them in its worker). */
export const registerTokenSequences = (): void =>
  register({ datasets: { [TOKEN_DATASET]: () => tokenSequences(320, 100) } });
