// The shipped Prometheus alert rules (docs/alerts.yml) pass their promtool unit tests (test/fixtures/alerts.test.yml):
// each alert fires when it should and stays quiet when it should not. promtool comes from Debian's `prometheus`
// package, installed by `npm run setup:test`; without it this test fails and says so.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT, resolveToolBinary } from '../../cli/tools';
import { tmpDir } from '../helpers/cluster';

const RULES = path.join(PROJECT_ROOT, 'docs', 'alerts.yml');
const TESTS = path.join(PROJECT_ROOT, 'test', 'fixtures', 'alerts.test.yml');

function promtool(): string {
  const bin = resolveToolBinary('promtool');
  assert.ok(
    bin,
    "promtool is missing (not in .tools/bin nor on PATH): run `npm run setup:test`, which installs Debian's " +
      '`prometheus` package (apt-get, as root), or install promtool yourself. The alert rules cannot be tested without it.',
  );
  return bin;
}

const run = (args: string[]) => spawnSync(promtool(), args, { encoding: 'utf8', cwd: PROJECT_ROOT });

describe('alert rules (docs/alerts.yml) under promtool', function () {
  this.timeout(60_000);

  it('the rules file is valid', function () {
    const r = run(['check', 'rules', RULES]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS: 9 rules found/);
  });

  it('every alert fires and stays quiet as its unit tests say', function () {
    const r = run(['test', 'rules', TESTS]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /SUCCESS/);
  });

  it('the unit tests catch a wrong rule (a stale threshold of 2.5 hours instead of 15 minutes)', function () {
    const dir = tmpDir('dt-rules-');
    fs.mkdirSync(path.join(dir, 'docs'));
    fs.mkdirSync(path.join(dir, 'test', 'fixtures'), { recursive: true });
    const rules = fs.readFileSync(RULES, 'utf8');
    assert.match(rules, /> 900\n/);
    fs.writeFileSync(path.join(dir, 'docs', 'alerts.yml'), rules.replace(/> 900\n/, '> 9000\n'));
    fs.copyFileSync(TESTS, path.join(dir, 'test', 'fixtures', 'alerts.test.yml'));
    const r = run(['test', 'rules', path.join(dir, 'test', 'fixtures', 'alerts.test.yml')]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /FAILED[\s\S]*DurableTrainCheckpointStale/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
