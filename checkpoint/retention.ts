// Retention policies as small independent rules. Pure selection; the manager does the deleting.
import type { RetentionPolicy } from './types';

export interface RetentionCandidate {
  id: string;
  step: number;
  createdAt: string;
  metrics: Record<string, number>;
}

/** Newest first: by step, then createdAt, then id (all descending). */
export function newestFirst<T extends { step: number; createdAt: string; id: string }>(a: T, b: T): number {
  return b.step - a.step || cmp(b.createdAt, a.createdAt) || cmp(b.id, a.id);
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function validatePolicy(policy: RetentionPolicy): void {
  const nonNegInt = (what: string, v: unknown) => {
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      throw new Error(`retention ${what} must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
  };
  nonNegInt('keepLatest', policy.keepLatest);
  if (policy.keepEverySteps !== undefined && policy.keepEverySteps !== 0)
    nonNegInt('keepEverySteps', policy.keepEverySteps);
  if (policy.keepBest) {
    nonNegInt('keepBest.k', policy.keepBest.k);
    if (typeof policy.keepBest.metric !== 'string' || !policy.keepBest.metric)
      throw new Error('retention keepBest.metric must be a metric name');
    if (policy.keepBest.mode !== 'max' && policy.keepBest.mode !== 'min')
      throw new Error(`retention keepBest.mode must be 'max' or 'min'`);
  }
}

export function hasAnyRule(policy: RetentionPolicy): boolean {
  return policy.keepLatest !== undefined || policy.keepBest !== undefined || !!policy.keepEverySteps;
}

/**
 * Ids the policy keeps, with why. `isValid` is asked lazily, newest/best first, so only as many checkpoints are
 * verified as the rules need; damaged ones never fill a keepLatest or keepBest slot. The newest valid
 * checkpoint is always kept, so a run can always resume.
 */
export async function selectRetained(
  candidates: RetentionCandidate[],
  policy: RetentionPolicy,
  isValid: (id: string) => Promise<boolean>,
): Promise<Map<string, string[]>> {
  const keep = new Map<string, string[]>();
  const mark = (id: string, why: string) => keep.set(id, [...(keep.get(id) ?? []), why]);
  const byNewest = [...candidates].sort(newestFirst);

  let newestValid: string | null = null;
  let latestLeft = policy.keepLatest ?? 0;
  for (const c of byNewest) {
    if (latestLeft === 0 && newestValid) break;
    if (!(await isValid(c.id))) continue;
    newestValid ??= c.id;
    if (latestLeft > 0) {
      mark(c.id, 'latest');
      latestLeft--;
    }
  }
  if (newestValid) mark(newestValid, 'newest-valid');

  if (policy.keepBest && policy.keepBest.k > 0) {
    const { k, metric, mode } = policy.keepBest;
    const scored = candidates.filter(
      (c) => typeof c.metrics[metric] === 'number' && Number.isFinite(c.metrics[metric]),
    );
    // Best first; on a tie the older one wins, so equal newcomers never churn the kept set.
    scored.sort((a, b) => {
      const d = mode === 'max' ? b.metrics[metric] - a.metrics[metric] : a.metrics[metric] - b.metrics[metric];
      return d || -newestFirst(a, b);
    });
    let left = k;
    for (const c of scored) {
      if (left === 0) break;
      if (!(await isValid(c.id))) continue;
      mark(c.id, `best-${metric}`);
      left--;
    }
  }

  if (policy.keepEverySteps) {
    for (const c of candidates) if (c.step % policy.keepEverySteps === 0) mark(c.id, `every-${policy.keepEverySteps}`);
  }
  return keep;
}
