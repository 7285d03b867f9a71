#!/usr/bin/env node
// Bundles the compiled shim (shim/dist/cli.js and everything it imports: @keygate/shared, grpc-js,
// pino, prom-client, undici, yaml, zod) into one ES module, shim/dist/bundle/keygate-shim.mjs, with
// a linked source map. The package bin (shim/bin/keygate-shim.js) runs it and the image ships only
// it: one file to read and compile at start instead of ~190 (docs/benchmarks.md, "Issue 21: start
// and memory"). Run after `tsc -b` (npm run build, prepare, scripts/test.mjs and run-tests.mjs do);
// `--if-stale` bundles only when a compiled file is newer than the bundle.
// Not minified: minifying saved no measurable start time and makes stack traces in logs unreadable.
// The folder depth matters until the .proto files are gone: shim/dist/grpc/proto.js finds them at
// `../../proto/` from its own URL, which from shim/dist/bundle/ is still shim/proto/.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
export const SHIM_BUNDLE = `${root}shim/dist/bundle/keygate-shim.mjs`;
const ENTRY = `${root}shim/dist/cli.js`;

/** Newest mtime (ms) of the compiled JavaScript the bundle is made of. */
function newestInput() {
  let newest = 0;
  for (const dir of [`${root}shim/dist`, `${root}shared/dist`]) {
    for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!e.isFile() || !e.name.endsWith('.js') || e.name.endsWith('.test.js')) continue;
      const full = join(e.parentPath ?? e.path, e.name);
      if (full.includes('/dist/bundle/')) continue;
      newest = Math.max(newest, statSync(full).mtimeMs);
    }
  }
  return newest;
}

export async function bundleShim({ ifStale = false } = {}) {
  if (!existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: run tsc -b first`);
  if (ifStale && existsSync(SHIM_BUNDLE) && statSync(SHIM_BUNDLE).mtimeMs >= newestInput()) return false;
  const { build } = await import('esbuild');
  await build({
    entryPoints: [ENTRY],
    outfile: SHIM_BUNDLE,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.12',
    sourcemap: 'linked',
    // CommonJS dependencies (grpc-js, pino, prom-client) call require() for Node's own modules.
    banner: {
      js: "import { createRequire as __keygateRequire } from 'node:module';\nconst require = __keygateRequire(import.meta.url);",
    },
    legalComments: 'eof',
    logLevel: 'warning',
  });
  return true;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    await bundleShim({ ifStale: process.argv.includes('--if-stale') });
  } catch (err) {
    console.error(`bundle-shim: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
