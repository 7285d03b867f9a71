#!/usr/bin/env node
// `npm run test:k8s`: the Kubernetes suites (docs/kubernetes.md) on every kube-apiserver release of the
// matrix (test/k8s/tools/versions.env K8S_VERSIONS), or on KEYGATE_K8S_VERSION alone. For each release it
// builds or reuses the binaries (test/k8s/tools/build.sh), then runs the one-master suite and the
// three-master suite in turn. Prints each part's duration and closes with one "N passed, N failed" line.
// Usage: node scripts/test-k8s.mjs [one|three ...]   (only those suites; default both)
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { runNodeTest } from './node-test-run.mjs';

const root = new URL('..', import.meta.url).pathname;
const SUITES = {
  one: 'test/dist/k8s/k8s.k8s-test.js',
  three: 'test/dist/k8s/ha.k8s-test.js',
};
const picked = process.argv.slice(2);
for (const s of picked) {
  if (!(s in SUITES)) {
    console.error(`test-k8s: unknown suite ${s} (one of: ${Object.keys(SUITES).join(', ')})`);
    process.exit(2);
  }
}
const files = (picked.length > 0 ? picked : Object.keys(SUITES)).map((s) => SUITES[s]);
const env = readFileSync(new URL('../test/k8s/tools/versions.env', import.meta.url), 'utf8');
const matrix = /^K8S_VERSIONS="([^"]+)"$/m.exec(env)?.[1]?.split(/\s+/).filter(Boolean) ?? [];
const releases = process.env.KEYGATE_K8S_VERSION ? [process.env.KEYGATE_K8S_VERSION] : matrix;
if (releases.length === 0) {
  console.error('test-k8s: versions.env has no K8S_VERSIONS');
  process.exit(2);
}

const total = { pass: 0, fail: 0, skipped: 0 };
const timings = [];
const t0 = Date.now();
const secs = (from) => Math.round((Date.now() - from) / 1000);
for (const version of releases) {
  let t = Date.now();
  console.log(`\n== kube-apiserver ${version}: build or reuse the binaries`);
  const built = spawnSync('bash', ['test/k8s/tools/build.sh'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, KEYGATE_K8S_VERSION: version },
  });
  timings.push(`build ${version}: ${secs(t)} s`);
  if (built.status !== 0) {
    console.error(`test-k8s: building kube-apiserver ${version} failed (exit ${built.status})`);
    total.fail++;
    continue;
  }
  for (const file of files) {
    t = Date.now();
    console.log(`\n== kube-apiserver ${version}: ${file}`);
    // One file per runner process, so that a suite's summary is printed before the next one starts.
    const { code, counts } = await runNodeTest(['--test-reporter=spec', file], {
      cwd: root,
      env: { KEYGATE_K8S_VERSION: version },
    });
    const failed = counts.fail + counts.cancelled + (code !== 0 && counts.fail === 0 ? 1 : 0);
    total.pass += counts.pass;
    total.fail += failed;
    total.skipped += counts.skipped + counts.todo;
    timings.push(
      `${version} ${file.replace(/^.*\//, '')}: ${secs(t)} s (${counts.pass} passed, ${failed} failed)`,
    );
  }
}
console.log('\ntest-k8s: durations');
for (const line of timings) console.log(`  ${line}`);
console.log(`  total: ${secs(t0)} s`);
console.log(`\nkeygate Kubernetes suites on ${releases.join(', ')}`);
console.log(`${total.pass} passed, ${total.fail} failed, ${total.skipped} skipped`);
process.exit(total.fail === 0 && total.pass > 0 ? 0 : 1);
