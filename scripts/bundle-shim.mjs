#!/usr/bin/env node
// Bundles the compiled shim (shim/dist/cli.js and everything it imports: @keygate/shared, grpc-js,
// pino, prom-client, undici, yaml, zod) into one ES module, shim/dist/bundle/keygate-shim.mjs, with
// a linked source map, plus chunks beside it for what `serve` never loads (the gRPC client and
// grpc-js). The package bin (shim/bin/keygate-shim.js) runs it and the image ships only that folder:
// one file to read and compile at start instead of ~190 (docs/benchmarks.md, "Issue 21: start
// and memory"). Run after `tsc -b` (npm run build, prepare, scripts/test.mjs and run-tests.mjs do);
// `--if-stale` bundles only when a compiled file is newer than the bundle. `undici` is replaced by
// scripts/bundle/undici-slim.cjs (the part the shim uses).
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const BUNDLE_DIR = `${root}shim/dist/bundle`;
export const SHIM_BUNDLE = `${BUNDLE_DIR}/keygate-shim.mjs`;
const ENTRY = `${root}shim/dist/cli.js`;

/** The compiled JavaScript the bundle can be made of (no tests, no test doubles). */
function* inputs() {
  for (const dir of [`${root}shim/dist`, `${root}shared/dist`]) {
    for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!e.isFile() || !e.name.endsWith('.js') || e.name.endsWith('.test.js')) continue;
      const full = join(e.parentPath ?? e.path, e.name);
      if (!/\/dist\/(bundle|testing)\//.test(full)) yield full;
    }
  }
}

/** Newest mtime (ms) of the compiled inputs. */
function newestInput() {
  let newest = 0;
  for (const f of inputs()) newest = Math.max(newest, statSync(f).mtimeMs);
  return newest;
}

/** What scripts/bundle/undici-slim.cjs exports: the shim may import only these from 'undici'. */
const UNDICI_SLIM = `${root}scripts/bundle/undici-slim.cjs`;
const UNDICI_NAMES = new Set([
  'Agent',
  'Dispatcher',
  'errors',
  'getGlobalDispatcher',
  'request',
  'setGlobalDispatcher',
]);

/** Fails when compiled code imports from 'undici' anything the slim entry does not export. */
function checkUndiciImports() {
  for (const f of inputs()) {
    for (const m of readFileSync(f, 'utf8').matchAll(/import\s+([^;]*?)\s+from\s+['"]undici['"]/g)) {
      const names = /^\{([^}]*)\}$/
        .exec(m[1].trim())?.[1]
        .split(',')
        .map((n) => n.trim().split(/\s+as\s+/)[0]);
      const bad = names === undefined ? [m[1]] : names.filter((n) => n !== '' && !UNDICI_NAMES.has(n));
      if (bad.length > 0)
        throw new Error(
          `${f} imports ${bad.join(', ')} from undici: add it to ${UNDICI_SLIM} and UNDICI_NAMES`,
        );
    }
  }
}

export async function bundleShim({ ifStale = false } = {}) {
  if (!existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: run tsc -b first`);
  if (ifStale && existsSync(SHIM_BUNDLE) && statSync(SHIM_BUNDLE).mtimeMs >= newestInput()) return false;
  checkUndiciImports();
  const { build } = await import('esbuild');
  // Chunk names change with their content: last build's must not stay beside this one's.
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  await build({
    entryPoints: { 'keygate-shim': ENTRY },
    outdir: BUNDLE_DIR,
    outExtension: { '.js': '.mjs' },
    // What only some commands load (the gRPC client, grpc-js's server behind KEYGATE_GRPC_SERVER)
    // goes into chunks of its own beside the entry: `serve` never reads or compiles them.
    splitting: true,
    chunkNames: 'chunk-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.12',
    sourcemap: 'linked',
    // CommonJS dependencies (grpc-js, pino, prom-client) call require() for Node's own modules.
    banner: {
      js: "import { createRequire as __keygateRequire } from 'node:module';\nconst require = __keygateRequire(import.meta.url);",
    },
    // Whitespace and comments out, names kept (stack traces stay readable; the source map maps
    // them to the TypeScript). Without comments the file is ASCII only: one non-ASCII character
    // anywhere makes V8 hold the whole source as a two-byte string, twice the memory.
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'ascii',
    legalComments: 'linked',
    logLevel: 'warning',
    // undici's index loads fetch, WebSocket, the mocks and caches too: ~0.5 MB the shim never runs.
    plugins: [
      {
        // `import … from 'node:http'` in an ES module builds an ES module facade of the built-in,
        // which reads every export, lazy ones included: node:http's WebSocket getter alone loads
        // Node's own undici (~18 ms of the start on Node 24). require() gives the CommonJS object,
        // whose lazy exports stay lazy. So ES imports of built-ins become require() calls.
        name: 'builtins-by-require',
        setup(b) {
          b.onResolve({ filter: /^node:/ }, (args) =>
            args.kind === 'require-call'
              ? { path: args.path, external: true }
              : { path: args.path, namespace: 'builtin-by-require' },
          );
          b.onLoad({ filter: /.*/, namespace: 'builtin-by-require' }, (args) => ({
            contents: `module.exports = require(${JSON.stringify(args.path)});`,
            loader: 'js',
          }));
        },
      },
      {
        name: 'undici-slim',
        setup(b) {
          b.onResolve({ filter: /^undici$/ }, () => ({ path: UNDICI_SLIM }));
        },
      },
    ],
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
