// Reads TensorBoard log directories with TensorBoard's own reader (Python, from PyPI: scripts/setup.sh --test
// installs it into .tools/venv).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../cli/tools';

export const TOOL_PYTHON = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'python');

export interface TensorboardRuns {
  /** run (directory relative to the logdir) -> tag -> [step, value] in file order. */
  scalars: Record<string, Record<string, Array<[number, number]>>>;
  /** run -> tag -> the strings of its text summaries. */
  texts: Record<string, Record<string, string[]>>;
}

/** Every run under `logdir` as TensorBoard's EventMultiplexer loads it. */
export function tensorboardRead(logdir: string): TensorboardRuns {
  const script = `
import json, sys
from tensorboard.backend.event_processing import event_multiplexer
m = event_multiplexer.EventMultiplexer(size_guidance={'scalars': 0, 'tensors': 0})
m.AddRunsFromDirectory(sys.argv[1])
m.Reload()
scalars, texts = {}, {}
for run, tags in m.Runs().items():
    scalars[run] = {t: [[e.step, e.value] for e in m.Scalars(run, t)] for t in tags['scalars']}
    acc = m.GetAccumulator(run)
    texts[run] = {t: [v.decode() for e in acc.Tensors(t) for v in e.tensor_proto.string_val] for t in tags['tensors']}
print(json.dumps({'scalars': scalars, 'texts': texts}))
`;
  if (!fs.existsSync(TOOL_PYTHON))
    throw new Error(`${TOOL_PYTHON} is missing: run scripts/setup.sh --test (installs tensorboard)`);
  return JSON.parse(
    execFileSync(TOOL_PYTHON, ['-c', script, logdir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
  );
}
