#!/usr/bin/env node
// The `keygate-shim` command (package bin, image entry point): runs the compiled CLI, or says how
// to build it. It is committed, unlike dist/, so that npm links it even before the first build.
import { existsSync } from 'node:fs';
import module from 'node:module';

// Node 22.1+: keep V8's compiled code of the shim's modules on disk, so a restarted shim (a crash
// loop, a kubelet restart) parses and compiles less before its socket is up (docs/benchmarks.md,
// "Node 24"). Where: $NODE_COMPILE_CACHE, else <tmpdir>/node-compile-cache (the static pod's /tmp
// emptyDir); NODE_DISABLE_COMPILE_CACHE=1 turns it off. Node 20 has no such API: nothing happens.
// A cache that cannot be written (read-only /tmp) is skipped by Node itself, never an error.
if (typeof module.enableCompileCache === 'function') module.enableCompileCache();

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error(
    'keygate-shim: not built yet; run `npm run build` at the repository root (npm install does it)',
  );
  process.exit(1);
}
await import(cli.href);
