#!/usr/bin/env node
// The `keygate-shim` command (package bin, image entry point): runs the compiled CLI, or says how
// to build it. It is committed, unlike dist/, so that npm links it even before the first build.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error(
    'keygate-shim: not built yet; run `npm run build` at the repository root (npm install does it)',
  );
  process.exit(1);
}
await import(cli.href);
