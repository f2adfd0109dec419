// Learning-rate schedules. Configuration comes from the spec; everything that changes while training
// (base rate after user overrides, plateau bookkeeping) is in a small JSON state saved with checkpoints.
import type { ScheduleSpec } from '../spec/types';

export type ScheduleName = ScheduleSpec['name'];

export interface ScheduleState {
  name: ScheduleName;
  /** The spec's learning rate, or the last user override. */
  baseLearningRate: number;
  /** The rate the next step uses. */
  learningRate: number;
  /** plateau only: best metric so far and epochs without improvement. */
  best: number | null;
  wait: number;
  /** plateau only: the current (possibly reduced) rate. */
  plateauLearningRate: number | null;
  /** User overrides, in order. */
  overrides: Array<{ step: number; learningRate: number }>;
}

function checkLr(v: number, what: string): number {
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0))
    throw new Error(`${what} must be a positive number, got ${v}`);
  return v;
}

type Resolved =
  | { name: 'constant' }
  | { name: 'step'; every: number; factor: number }
  | { name: 'cosine'; warmupSteps: number; minLearningRate: number }
  | { name: 'plateau'; metric: 'loss' | 'accuracy'; patience: number; factor: number; minLearningRate: number };

function resolve(spec: ScheduleSpec | undefined): Resolved {
  const s = spec ?? { name: 'constant' };
  switch (s.name) {
    case 'constant':
      return { name: 'constant' };
    case 'step':
      if (!(Number.isInteger(s.every) && s.every >= 1))
        throw new Error(`schedule.every must be an integer >= 1, got ${s.every}`);
      if (!(s.factor > 0 && s.factor <= 1)) throw new Error(`schedule.factor must be in (0, 1], got ${s.factor}`);
      return { name: 'step', every: s.every, factor: s.factor };
    case 'cosine': {
      const warmupSteps = s.warmupSteps ?? 0;
      const minLearningRate = s.minLearningRate ?? 0;
      if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0))
        throw new Error(`schedule.warmupSteps must be an integer >= 0`);
      if (!(minLearningRate >= 0)) throw new Error(`schedule.minLearningRate must be >= 0`);
      return { name: 'cosine', warmupSteps, minLearningRate };
    }
    case 'plateau': {
      const r = {
        name: 'plateau' as const,
        metric: s.metric ?? 'loss',
        patience: s.patience ?? 1,
        factor: s.factor ?? 0.5,
        minLearningRate: s.minLearningRate ?? 0,
      };
      if (r.metric !== 'loss' && r.metric !== 'accuracy') throw new Error(`schedule.metric must be loss or accuracy`);
      if (!(Number.isInteger(r.patience) && r.patience >= 0))
        throw new Error(`schedule.patience must be an integer >= 0`);
      if (!(r.factor > 0 && r.factor <= 1)) throw new Error(`schedule.factor must be in (0, 1], got ${r.factor}`);
      if (!(r.minLearningRate >= 0)) throw new Error(`schedule.minLearningRate must be >= 0`);
      return r;
    }
    default:
      throw new Error(
        `unknown schedule ${JSON.stringify((s as { name: unknown }).name)} (constant, step, cosine, plateau)`,
      );
  }
}

export class LrSchedule {
  private constructor(
    private readonly cfg: Resolved,
    private s: ScheduleState,
  ) {}

  static create(spec: ScheduleSpec | undefined, baseLearningRate: number): LrSchedule {
    const cfg = resolve(spec);
    const base = checkLr(baseLearningRate, 'optimizer.learningRate');
    return new LrSchedule(cfg, {
      name: cfg.name,
      baseLearningRate: base,
      learningRate: base,
      best: null,
      wait: 0,
      plateauLearningRate: cfg.name === 'plateau' ? base : null,
      overrides: [],
    });
  }

  /** Configuration from `spec`, progress from a saved state (which must be for the same kind of schedule). */
  static fromState(spec: ScheduleSpec | undefined, state: unknown): LrSchedule {
    const cfg = resolve(spec);
    const st = state as ScheduleState;
    if (!st || typeof st !== 'object') throw new Error('schedule state: missing');
    if (st.name !== cfg.name)
      throw new Error(`schedule state is for ${JSON.stringify(st.name)}, the spec says ${cfg.name}`);
    checkLr(st.baseLearningRate, 'schedule state baseLearningRate');
    if (!Number.isInteger(st.wait) || !Array.isArray(st.overrides)) throw new Error('schedule state: malformed');
    if (cfg.name === 'plateau') checkLr(st.plateauLearningRate as number, 'schedule state plateauLearningRate');
    return new LrSchedule(cfg, JSON.parse(JSON.stringify(st)) as ScheduleState);
  }

  /** The learning rate for the (0-based) step `step` of a run of `totalSteps` steps. */
  learningRate(step: number, totalSteps: number): number {
    const base = this.s.baseLearningRate;
    const c = this.cfg;
    switch (c.name) {
      case 'constant':
        return base;
      case 'step':
        return base * Math.pow(c.factor, Math.floor(step / c.every));
      case 'cosine': {
        // Linear warmup reaching the base rate at the last warmup step, then cosine down to the minimum.
        if (step < c.warmupSteps) return (base * (step + 1)) / c.warmupSteps;
        const p = Math.min(1, (step - c.warmupSteps) / Math.max(1, totalSteps - c.warmupSteps));
        return c.minLearningRate + (base - c.minLearningRate) * 0.5 * (1 + Math.cos(Math.PI * p));
      }
      case 'plateau':
        return this.s.plateauLearningRate as number;
    }
  }

  /** Feeds an epoch-end evaluation (only the plateau schedule uses it). */
  onEpochEnd(ev: { loss: number; accuracy: number | null }): void {
    const c = this.cfg;
    if (c.name !== 'plateau') return;
    const value = c.metric === 'loss' ? ev.loss : ev.accuracy;
    if (value === null) return; // no accuracy (regression): the spec check refuses that combination
    const improved = this.s.best === null || (c.metric === 'loss' ? value < this.s.best : value > this.s.best);
    if (improved) {
      this.s.best = value;
      this.s.wait = 0;
      return;
    }
    this.s.wait += 1;
    if (this.s.wait >= c.patience) {
      this.s.plateauLearningRate = Math.max(c.minLearningRate, (this.s.plateauLearningRate as number) * c.factor);
      this.s.wait = 0;
    }
  }

  /** User override: the base rate from now on (the plateau rate is reset to it). A no-op if nothing changes. */
  setLearningRate(v: number, step: number): void {
    checkLr(v, 'learning rate');
    if (this.s.baseLearningRate === v && (this.cfg.name !== 'plateau' || this.s.plateauLearningRate === v)) return;
    this.s.baseLearningRate = v;
    if (this.cfg.name === 'plateau') this.s.plateauLearningRate = v;
    this.s.overrides.push({ step, learningRate: v });
  }

  /** A deep copy of the state, with `learningRate` set to the rate of step `step`. */
  getState(step: number, totalSteps: number): ScheduleState {
    const copy = JSON.parse(JSON.stringify(this.s)) as ScheduleState;
    copy.learningRate = this.learningRate(step, totalSteps);
    return copy;
  }
}
