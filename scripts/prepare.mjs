#!/usr/bin/env node
// npm's `prepare` (run by `npm install` and `npm ci` at the root): builds the TypeScript and the
// shim's bundle (scripts/bundle-shim.mjs) so that `npx keygate-gateway` and `npx keygate-shim` work
// straight after the install. An image's
// dependency layer has package.json files but no sources yet: there it says so and builds nothing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
if (!existsSync(`${root}shared/src/index.ts`)) {
  console.log('keygate: no sources here yet (dependency layer); skipping the build');
  process.exit(0);
}
const tsc = `${root}node_modules/typescript/bin/tsc`;
if (!existsSync(tsc)) {
  console.log('keygate: TypeScript is not installed (--omit=dev); skipping the build');
  process.exit(0);
}
const r = spawnSync(process.execPath, [tsc, '-b'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
const { bundleShim } = await import('./bundle-shim.mjs');
await bundleShim();
