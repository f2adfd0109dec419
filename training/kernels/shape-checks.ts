// A faster way to compute something, used for a shape only where it was found to give the reference's result: checked
// once per process and shape, on the first real input (kernels differ by CPU and library; a disagreement keeps the
// reference for that shape). With a switch for tests and benchmarks, and counts.

export interface ShapeCheckStats {
  /** Times the faster way ran. */
  calls: number;
  /** Shapes checked. */
  signatures: number;
  /** Shapes found to differ (the reference is used for them). */
  disagreements: number;
}

export class ShapeChecks {
  /** Off: the reference everywhere (tests and benchmarks compare the two). */
  allowed = true;
  private readonly verdicts = new Map<string, boolean>();
  private readonly counts: ShapeCheckStats = { calls: 0, signatures: 0, disagreements: 0 };

  /** Whether `key` was found to agree, or undefined when not checked yet. */
  verdict(key: string): boolean | undefined {
    return this.verdicts.get(key);
  }

  /** Records the check of `key`; returns true for the first disagreement of the process (to say so once). */
  record(key: string, same: boolean): boolean {
    this.verdicts.set(key, same);
    this.counts.signatures++;
    return !same && this.counts.disagreements++ === 0;
  }

  /** Counts one run of the faster way. */
  ran(): void {
    this.counts.calls++;
  }

  stats(): ShapeCheckStats {
    return { ...this.counts };
  }
}
