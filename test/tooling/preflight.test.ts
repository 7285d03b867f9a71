import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '#devstack/paths.js';

/** Runs scripts/preflight.mjs with a PATH that holds only the named commands (symlinked). */
function preflight(dir: string, commands: Record<string, string>, env: Record<string, string> = {}) {
  for (const [name, target] of Object.entries(commands)) symlinkSync(target, join(dir, name));
  return spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/preflight.mjs')], {
    env: { PATH: dir, ...env },
    encoding: 'utf8',
  });
}

const which = (c: string) => spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).stdout.trim();

/**
 * `npm test` on a machine without the system tools: it stops before running anything, with one
 * line naming the package and the command that installs it (here apt-get is off PATH, so it
 * cannot install it itself).
 */
describe('npm test preflight', () => {
  const dirs: string[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'kg-preflight-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('no SoftHSM2, no gcc and no apt-get: one line naming both packages and the install command, exit 1', () => {
    const r = preflight(dir(), {});
    assert.equal(r.status, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] ?? '', /softhsm2-util \(package softhsm2/);
    assert.match(lines[0] ?? '', /gcc \(package gcc/);
    assert.match(lines[0] ?? '', /apt-get install -y softhsm2 gcc opensc/);
  });

  const softhsm = which('softhsm2-util');
  const go = which('go');
  const gcc = which('gcc');
  it('SoftHSM2 but no Go: one line naming Go and how to skip its test', {
    skip: !(softhsm && gcc) && 'no softhsm2-util or gcc here',
  }, () => {
    const r = preflight(dir(), { 'softhsm2-util': softhsm, gcc });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /Go \d+\.\d+\.\d+ or later is not installed.*KEYGATE_TEST_SKIP_GO=1/);
  });

  it('SoftHSM2 with Go, or with KEYGATE_TEST_SKIP_GO=1: ready, silent', {
    skip: !(softhsm && go && gcc) && 'no softhsm2-util, go or gcc here',
  }, () => {
    const withGo = preflight(dir(), { 'softhsm2-util': softhsm, go, gcc });
    assert.equal(withGo.status, 0, withGo.stderr);
    assert.equal(withGo.stderr, '');
    const skipping = preflight(dir(), { 'softhsm2-util': softhsm, gcc }, { KEYGATE_TEST_SKIP_GO: '1' });
    assert.equal(skipping.status, 0, skipping.stderr);
  });
});
