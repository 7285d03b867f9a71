#!/usr/bin/env node
// The `keygate-shim` command (package bin, image entry point): runs the bundled shim
// (dist/bundle/keygate-shim.mjs, one file made by scripts/bundle-shim.mjs; the image ships only
// it), or says how to build it. It is committed, unlike dist/, so that npm links it even before
// the first build. In a source tree whose compiled files are newer than the bundle (`tsc -b`
// without the bundle step), it runs the compiled CLI instead, so that it never runs stale code.
import { existsSync, statSync } from 'node:fs';
import module from 'node:module';

// Node 22.1+: keep V8's compiled code of the shim on disk, so a restarted shim (a crash loop, a
// kubelet restart) parses and compiles less before its socket is up (docs/benchmarks.md, "Issue
// 21: start and memory"). Where: $NODE_COMPILE_CACHE, else <tmpdir>/node-compile-cache (the static
// pod's /tmp emptyDir); NODE_DISABLE_COMPILE_CACHE=1 turns it off. Node 20 has no such API: nothing
// happens. A cache that cannot be written (read-only /tmp) is skipped by Node itself, never an error.
if (typeof module.enableCompileCache === 'function') module.enableCompileCache();

const bundle = new URL('../dist/bundle/keygate-shim.mjs', import.meta.url);
const compiled = new URL('../dist/cli.js', import.meta.url);
const mtime = (u) => statSync(u, { throwIfNoEntry: false })?.mtimeMs;
const bundled = mtime(bundle);
const entry = bundled !== undefined && !(mtime(compiled) > bundled) ? bundle : compiled;
if (!existsSync(entry)) {
  console.error(
    'keygate-shim: not built yet; run `npm run build` at the repository root (npm install does it)',
  );
  process.exit(1);
}
await import(entry.href);
