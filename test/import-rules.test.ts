import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;
const fixture = 'test/fixtures/import-rules';

interface CruiseResult {
  summary: { violations: { rule: { name: string }; from: string; to: string }[] };
}

function cruise(paths: string[]): CruiseResult {
  const r = spawnSync(
    `${root}node_modules/.bin/depcruise`,
    ['--config', '.dependency-cruiser.cjs', '--output-type', 'json', ...paths],
    { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  assert.ok(r.stdout, `depcruise printed nothing: ${r.stderr}`);
  return JSON.parse(r.stdout) as CruiseResult;
}

describe('import rules', () => {
  it('every rule fires on the fixture tree that breaks it', () => {
    const config = readFileSync(`${root}.dependency-cruiser.cjs`, 'utf8');
    const ruleNames = [...config.matchAll(/name: '([a-z-]+)'/g)].map((m) => m[1]);
    assert.ok(ruleNames.length >= 9, 'rules not found in .dependency-cruiser.cjs');
    const fired = new Set(
      cruise([
        `${fixture}/shared/src`,
        `${fixture}/shim/src`,
        `${fixture}/gateway/src`,
      ]).summary.violations.map((v) => v.rule.name),
    );
    for (const name of ruleNames)
      assert.ok(fired.has(name as string), `rule ${name} did not fire on ${fixture}`);
  });

  it('the real source tree breaks none of them', () => {
    const { violations } = cruise(['shared/src', 'gateway/src', 'shim/src']).summary;
    assert.deepEqual(
      violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`),
      [],
    );
  });
});
