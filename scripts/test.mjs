#!/usr/bin/env node
// `npm test`: type check and build, lint, import rules, then every test. Stops at the first
// stage that fails, so the last lines always say which stage broke (or the test summary).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { preflight } from './preflight.mjs';

const root = new URL('..', import.meta.url).pathname;
const bin = (name) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;
const stages = [
  ['type check and build', bin('tsc'), ['-b']],
  ['bundle the shim', process.execPath, [`${root}scripts/bundle-shim.mjs`]],
  ['lint and format', bin('biome'), ['ci', '.', '--colors=off']],
  [
    'import rules',
    bin('depcruise'),
    [
      '--config',
      '.dependency-cruiser.cjs',
      ...['shared/src', 'gateway/src', 'shim/src'].filter((d) =>
        existsSync(new URL(`../${d}`, import.meta.url)),
      ),
    ],
  ],
];

console.log('== system tools');
const stop = preflight();
if (stop) {
  console.error(stop);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

for (const [label, cmd, args] of stages) {
  console.log(`\n== ${label}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`\n${label} failed`);
    console.log('0 passed, 1 failed');
    process.exit(r.status || 1);
  }
}
console.log('\n== tests');
const r = spawnSync(process.execPath, ['scripts/run-tests.mjs', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
