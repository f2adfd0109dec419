// The validation split: rows held out of the training split by a seeded permutation of their own (the trainer's
// random stream is untouched), so model selection never looks at the test split. A spec without a validation
// fraction (a run started before validation splits existed) keeps its data, and its fingerprint, exactly.
import { createHash } from 'crypto';
import { validationMask, validationSeed, type DataSplit, type LoadedData } from './data';

function take(split: DataSplit, rows: number[], featureSize: number): DataSplit {
  const x = new Float32Array(rows.length * featureSize);
  const y = new (split.y.constructor as Int32ArrayConstructor | Float32ArrayConstructor)(rows.length);
  rows.forEach((r, k) => {
    x.set(split.x.subarray(r * featureSize, (r + 1) * featureSize), k * featureSize);
    y[k] = split.y[r];
  });
  return { x, y, n: rows.length };
}

// Per loaded dataset (the loaders cache those per process) and fraction: the chunks of a run split once.
const carved = new WeakMap<LoadedData, Map<string, LoadedData & { validation: DataSplit }>>();

/**
 * `data` with `fraction` of its training rows moved to a validation split, chosen by a permutation seeded from
 * `seed`; both keep the rows' original order. The fingerprint covers the split. Unchanged without a fraction.
 */
export function carveValidation(
  data: LoadedData,
  fraction: number | undefined,
  seed: number,
): LoadedData & { validation: DataSplit | null } {
  const n = data.train.n;
  const isVal = validationMask(n, fraction, seed);
  if (!isVal) return { ...data, validation: null };
  const key = `${fraction}:${seed}`;
  const hit = carved.get(data)?.get(key);
  if (hit) return hit;
  const valRows: number[] = [];
  const trainRows: number[] = [];
  for (let r = 0; r < n; r++) (isVal[r] ? valRows : trainRows).push(r);
  const fingerprint = createHash('sha256')
    .update(data.fingerprint)
    .update(
      JSON.stringify({
        validationFraction: fraction,
        validationRows: valRows.length,
        validationSeed: validationSeed(seed),
      }),
    )
    .digest('hex');
  const out = {
    ...data,
    train: take(data.train, trainRows, data.featureSize),
    validation: take(data.train, valRows, data.featureSize),
    fingerprint,
  };
  if (!carved.has(data)) carved.set(data, new Map());
  carved.get(data)!.set(key, out);
  return out;
}
