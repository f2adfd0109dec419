// Every command of the CLI, in the order `--help` and the README list them. A new command is its module's
// definition (cli/command.ts) plus its line here.
import type { CommandDefinition } from './command';
import {
  checkpointsGcDefinition,
  checkpointsListDefinition,
  checkpointsPinDefinition,
  checkpointsShowDefinition,
  checkpointsSignDefinition,
  checkpointsUnpinDefinition,
  checkpointsVerifyDefinition,
} from './checkpoints';
import { codecServerDefinition } from './codec-server';
import { cancelDefinition, setLrDefinition, signalDefinitions } from './control';
import { devServerDefinition } from './dev-server';
import { drillDefinition } from './drill';
import { evaluateDefinition } from './evaluate';
import { exportDefinition } from './export';
import { forkDefinition } from './fork';
import { healthDefinition } from './health';
import { mainDefinition } from './main';
import { predictDefinition } from './predict';
import { reportDefinition } from './report';
import { lineageDefinition, runsListDefinition } from './runs';
import { startDefinition } from './start';
import { statusDefinition } from './status';
import { watchDefinition } from './watch';
import { workerDefinition } from './worker-command';

export const COMMANDS: readonly CommandDefinition[] = [
  mainDefinition,
  devServerDefinition,
  workerDefinition,
  startDefinition,
  statusDefinition,
  watchDefinition,
  checkpointsListDefinition,
  checkpointsVerifyDefinition,
  checkpointsShowDefinition,
  checkpointsSignDefinition,
  checkpointsPinDefinition,
  checkpointsUnpinDefinition,
  checkpointsGcDefinition,
  ...signalDefinitions,
  setLrDefinition,
  cancelDefinition,
  forkDefinition,
  lineageDefinition,
  runsListDefinition,
  healthDefinition,
  exportDefinition,
  evaluateDefinition,
  predictDefinition,
  drillDefinition,
  reportDefinition,
  codecServerDefinition,
];

/** The summaries of command groups (`checkpoints list`, `runs list`): their `--help` and the program's. */
export const GROUPS: Readonly<Record<string, string>> = {
  checkpoints: "a run's stored checkpoints: list, verify, show, sign, pin, unpin, gc",
  runs: 'the runs on the server',
};
