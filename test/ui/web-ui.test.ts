// The Temporal Web UI shows our runs: a real dev server with its UI, a real worker, a short run, and headless
// Debian Chromium (driven by playwright-core) finding the run through our custom search attributes.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { freePort } from '../../cli/dev-server';
import { PROJECT_ROOT } from '../../cli/tools';
import type { RunResult } from '../../workflows/progress';
import {
  cli,
  DIST,
  spawnWorker,
  startCluster,
  waitFor,
  writeSpec,
  type TestCluster,
  type WorkerProcess,
} from '../helpers/cluster';
import { inspectPng } from './png-inspect';

const CHROMIUM = process.env.DURABLE_TRAIN_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const spec = {
  model: 'mnist-mlp',
  dataset: { name: 'mnist', trainLimit: 600, testLimit: 200 },
  epochs: 1,
  batchSize: 50,
  chunkSteps: 6,
  seed: 3,
  optimizer: { name: 'adam', learningRate: 0.003 },
  checkpoint: { storage: 'file://.data/checkpoints' },
};

const listUrl = (uiUrl: string, query: string) =>
  `${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`;

describe('Temporal Web UI (real dev server with its UI, real worker, headless Chromium)', function () {
  this.timeout(600_000);
  let cluster: TestCluster | undefined;
  let worker: WorkerProcess | undefined;
  let browser: Browser | undefined;

  before(function () {
    // Not a skip: without a browser this test cannot show the UI works, so it fails and says how to fix it.
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium not found at ${CHROMIUM}. Install Debian's chromium with \`apt-get update && apt-get install -y chromium\` ` +
          '(`npm run setup:test` does it when DURABLE_TRAIN_SKIP_BROWSER is unset), or set DURABLE_TRAIN_CHROMIUM to a Chromium binary.',
      );
    }
  });
  after(async function () {
    await browser?.close();
    await worker?.kill('SIGTERM');
    await cluster?.close();
  });

  it('lists a finished run under its search attributes, shows its run id, and screenshots the page', async function () {
    cluster = await startCluster({ ui: true });
    assert.ok(cluster.server.uiUrl, 'the dev server serves the Web UI');
    worker = spawnWorker(cluster);
    await worker.ready;
    const runId = 'ui-run';
    const file = writeSpec(cluster.dir, 'ui.json', spec);
    const r = cli(cluster, ['start', '--spec', file, '--run-id', runId, '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr + worker.output());
    assert.equal(r.json<{ result: RunResult }>().result.status, 'completed');
    const executionRunId = (await cluster.client.workflow.getHandle(runId).describe()).runId;

    // The UI asks the same visibility store; wait until it answers, so a miss below is the UI's.
    const query = `DurableTrainModel="mnist-mlp" AND DurableTrainStatus="completed"`;
    await waitFor(`${runId} in visibility for ${query}`, async () => {
      for await (const w of cluster!.client.workflow.list({ query })) if (w.workflowId === runId) return true;
      return false;
    });

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });

    await page.goto(listUrl(cluster.server.uiUrl!, query), { waitUntil: 'networkidle' });
    const row = page.getByRole('link', { name: runId, exact: true });
    await row.first().waitFor({ state: 'visible', timeout: 60_000 });
    // The run's own row (the one holding its execution run id), not anywhere on the page.
    const runRow = page
      .locator('tr, [role="row"]')
      .filter({ has: page.getByRole('link', { name: runId, exact: true }) })
      .filter({ hasText: executionRunId });
    await runRow.first().waitFor({ state: 'visible', timeout: 10_000 });
    assert.equal(await runRow.count(), 1, 'one row for the run');
    const rowText = await runRow.innerText();
    assert.match(rowText, /COMPLETED/i, `the run's row says completed: ${rowText}`);
    assert.match(rowText, /trainingWorkflow/, `the run's row names the workflow type: ${rowText}`);

    const shot = path.join(cluster.dir, 'ui-run.png');
    await page.screenshot({ path: shot, fullPage: true });
    const out = path.join(PROJECT_ROOT, 'out', 'ui-run.png');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.copyFileSync(shot, out);
    const png = fs.readFileSync(shot);
    const facts = inspectPng(png);
    assert.ok(facts.width >= 1000 && facts.height >= 600, `screenshot size ${facts.width}x${facts.height}`);
    assert.ok(png.length > 20_000, `screenshot is ${png.length} bytes`);
    assert.ok(facts.colors >= 50, `a rendered page has many colours, got ${facts.colors}`);
    assert.ok(facts.dominantShare < 0.97, `not one flat colour: ${Math.round(facts.dominantShare * 100)}%`);

    // The query filters: a model no run used lists nothing, and not our run.
    await page.goto(listUrl(cluster.server.uiUrl!, 'DurableTrainModel="mnist-cnn"'), { waitUntil: 'networkidle' });
    await page.getByText('No Workflows Found').first().waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await page.getByText(executionRunId).count(), 0, 'the run is not listed under another model');
  });
});

describe('Temporal Web UI with encrypted payloads, decoded by `durable-train codec-server` (headless Chromium)', function () {
  this.timeout(600_000);
  let cluster: TestCluster | undefined;
  let worker: WorkerProcess | undefined;
  let codecServer: ChildProcess | undefined;
  let browser: Browser | undefined;
  after(async function () {
    await browser?.close();
    codecServer?.kill('SIGTERM');
    await worker?.kill('SIGTERM');
    await cluster?.close();
  });

  it("shows the run's decrypted input through the codec endpoint, and only ciphertext without it", async function () {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM} (npm run setup:test)`);
    const codecEnv = { DURABLE_TRAIN_CODEC_KEYS: `ui=${randomBytes(32).toString('base64')}` };
    const codecPort = await freePort();
    const codecUrl = `http://127.0.0.1:${codecPort}`;
    cluster = await startCluster({ ui: true, uiCodecEndpoint: codecUrl });
    const uiUrl = cluster.server.uiUrl!;
    codecServer = spawn(
      process.execPath,
      [path.join(DIST, 'client.js'), 'codec-server', '--port', String(codecPort), '--cors-origin', uiUrl],
      { env: { ...process.env, ...codecEnv }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let codecOut = '';
    codecServer.stdout!.on('data', (d: Buffer) => (codecOut += d.toString()));
    codecServer.stderr!.on('data', (d: Buffer) => (codecOut += d.toString()));
    await waitFor('the codec server', async () => codecOut.includes('codec server at'));

    worker = spawnWorker(cluster, { env: codecEnv });
    await worker.ready;
    const runId = 'ui-encrypted';
    // A value only this spec holds: the UI can only show it by decrypting the input.
    const marker = 'ckpt-ui-codec-51d2';
    const file = writeSpec(cluster.dir, 'enc.json', { ...spec, checkpoint: { storage: `file://.data/${marker}` } });
    const r = cli(cluster, ['start', '--spec', file, '--run-id', runId, '--wait', '--json'], { env: codecEnv });
    assert.equal(r.code, 0, r.stderr + worker.output());

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    const runPage = `${uiUrl}/namespaces/default/workflows/${runId}`;
    await page.goto(runPage, { waitUntil: 'networkidle' });
    await page.getByText(marker).first().waitFor({ state: 'attached', timeout: 60_000 });
    const shot = path.join(PROJECT_ROOT, 'out', 'ui-codec-run.png');
    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });

    // Without the codec server the same page cannot show it: the payloads are ciphertext.
    codecServer.kill('SIGTERM');
    await new Promise((resolve) => codecServer!.once('exit', resolve));
    const page2 = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    await page2.goto(runPage, { waitUntil: 'networkidle' });
    await page2.getByText(runId).first().waitFor({ state: 'visible', timeout: 60_000 });
    await page2.waitForTimeout(3000); // the UI tries the (now closed) endpoint and falls back to the raw payloads
    assert.equal(await page2.getByText(marker).count(), 0, 'no clear spec value without the codec endpoint');
  });
});
