#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js of shared, gateway, shim, test/ and bench/) with
// Node's test runner, streams its report, and closes with one plain summary line that CI reads.
// Usage: node scripts/run-tests.mjs [substring ...]   (only files whose path contains one of them)
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { runNodeTest } from './node-test-run.mjs';

const root = new URL('..', import.meta.url).pathname;
const roots = ['shared/dist', 'gateway/dist', 'shim/dist', 'test/dist', 'bench/dist'];
const filters = process.argv.slice(2);

function* walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) yield* walk(full);
    else if (name.endsWith('.test.js')) yield full;
  }
}

const files = roots
  .flatMap((r) => [...walk(join(root, r))])
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();

if (files.length === 0) {
  console.error('run-tests: no compiled test files found (did `tsc -b` run?)');
  process.exit(1);
}

// Tests spawn the shim's package bin, which runs the bundle: rebuild it when `tsc -b` left it stale.
const { bundleShim } = await import('./bundle-shim.mjs');
await bundleShim({ ifStale: true });

const concurrency = process.env.KEYGATE_TEST_CONCURRENCY ?? '2';
const { code, signal, counts } = await runNodeTest(
  [`--test-concurrency=${concurrency}`, '--test-timeout=600000', '--test-reporter=spec', ...files],
  { cwd: root },
);
const failed = counts.fail + counts.cancelled;
const ok = code === 0 && failed === 0 && counts.pass > 0;
console.log(`\nkeygate: ${files.length} test files, ${counts.tests} tests`);
console.log(`${counts.pass} passed, ${failed} failed, ${counts.skipped + counts.todo} skipped`);
if (!ok && code === 0)
  console.error(`run-tests: runner exited ${code} (${signal ?? 'no signal'}) with no passing test`);
process.exit(ok ? 0 : code || 1);
