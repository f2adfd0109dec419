// Runs every benchmark, one child process each (a fresh process per benchmark: no tfjs or heap state carried
// over), one after the other (never two at once: they would share the 2 CPUs). Prints one JSON object per
// benchmark on stdout (one line each); the benchmarks' tables and progress go to stderr.
//
//   npm run bench [-- --quick] [-- --only overhead,recovery] [-- --out DIR]
//
// --out DIR also writes DIR/<bench>.json. bench/backends.ts (another owner's) runs as it is, with a short budget
// and without its wasm-threads experiment under --quick.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { QUICK, arg, log, round, table } from './common';

interface Bench {
  name: string;
  args: string[];
  /** The script, when it is not `${name}.js`. */
  script?: string;
}

const BENCHES: Bench[] = [
  { name: 'checkpoint-io', args: [] },
  { name: 'memory', args: [] },
  { name: 'orchestration', args: [] },
  { name: 'recovery', args: [] },
  // Supervised training processes at the heartbeat timeout `start` records: a training process, a whole worker (a
  // standby waiting), a replica's process and a replica's worker SIGKILLed, a crash loop.
  { name: 'recovery-supervised', script: 'recovery', args: ['--supervised', '--heartbeat', '3'] },
  { name: 'restore', args: [] },
  { name: 'overhead', args: [] },
  { name: 'async-commit', args: [] },
  { name: 'incremental', args: [] },
  { name: 'commit-memory', args: [] },
  { name: 'distributed', args: [] },
  { name: 'backends', args: QUICK ? ['--budget-ms', '100', '--no-threads'] : [] },
  { name: 'small-models', args: [] },
];

function runChild(b: Bench): Promise<{ code: number | null; stdout: string; seconds: number }> {
  const started = Date.now();
  const args = [path.join(__dirname, `${b.script ?? b.name}.js`), ...b.args];
  if (QUICK && b.name !== 'backends') args.push('--quick');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, seconds: (Date.now() - started) / 1000 }));
  });
}

function parseResult(stdout: string): Record<string, unknown> | null {
  const text = stdout.trim();
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    for (const line of text.split('\n').reverse()) {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        // keep looking
      }
    }
  }
  return null;
}

async function main(): Promise<void> {
  const only = arg('--only')?.split(',');
  const out = arg('--out');
  if (out) fs.mkdirSync(out, { recursive: true });
  const rows: Array<Record<string, unknown>> = [];
  let failed = 0;
  for (const b of BENCHES.filter((x) => !only || only.includes(x.name))) {
    log(`\n=== bench ${b.name}${QUICK ? ' (quick)' : ''} ===`);
    const r = await runChild(b);
    const result = parseResult(r.stdout);
    const ok = r.code === 0 && result !== null;
    if (!ok) failed++;
    const line = result ?? { bench: b.name, error: `exit ${r.code}`, stdout: r.stdout.slice(-2000) };
    if (!line.bench) line.bench = b.name;
    process.stdout.write(JSON.stringify(line) + '\n');
    if (out && result) fs.writeFileSync(path.join(out, `${b.name}.json`), JSON.stringify(result, null, 2) + '\n');
    rows.push({ bench: b.name, status: ok ? 'ok' : `FAILED (exit ${r.code})`, seconds: round(r.seconds, 1) });
  }
  table('run-all', rows);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
