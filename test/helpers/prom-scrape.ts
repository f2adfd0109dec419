// A Prometheus scrape, parsed: promtool (the Prometheus project's own parser, `promtool check metrics`) must accept
// the text, then each sample line is read into name, labels and value for assertions.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolveToolBinary } from '../../cli/tools';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export class Scrape {
  constructor(
    readonly text: string,
    readonly samples: Sample[],
  ) {}

  /** Samples of `name` whose labels include `labels`. */
  find(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }

  /** The one value of `name` with `labels`; fails naming the series when there is none or several. */
  value(name: string, labels: Record<string, string> = {}): number {
    const found = this.find(name, labels);
    assert.equal(found.length, 1, `one sample of ${name}${JSON.stringify(labels)}, got ${JSON.stringify(found)}`);
    return found[0].value;
  }

  /** The declared type (# TYPE) of a metric family. */
  type(name: string): string | null {
    return new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(this.text)?.[1] ?? null;
  }
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseScrape(text: string): Scrape {
  const promtool = resolveToolBinary('promtool');
  assert.ok(promtool, 'promtool is missing: run `npm run setup:test` (Debian package prometheus)');
  const check = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  // 0: clean; 3: parsed, with lint hints only (naming style of the process metrics); 1: not the text format.
  assert.ok(
    check.status === 0 || (check.status === 3 && !/error while linting/.test(check.stdout + check.stderr)),
    `promtool rejects the scrape (exit ${check.status}): ${check.stdout}${check.stderr}`,
  );
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    assert.ok(m, `unparsed sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL))
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return new Scrape(text, samples);
}

export async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return parseScrape(await res.text());
}
