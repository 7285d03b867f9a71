import { join, resolve } from 'node:path';

/** Repository root (this file is tools/devstack/dist/paths.js once built). */
export const REPO_ROOT = resolve(new URL('../../../', import.meta.url).pathname);
/** The built gateway and shim CLIs the stack runs, as an operator would. */
export const GATEWAY_CLI = join(REPO_ROOT, 'gateway/dist/cli.js');
/** The shim's package bin, as the image runs it: the bundle (scripts/bundle-shim.mjs) with the compile cache. */
export const SHIM_CLI = join(REPO_ROOT, 'shim/bin/keygate-shim.js');
