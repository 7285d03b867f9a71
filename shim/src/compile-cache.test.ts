import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import module from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/keygate-shim.js', import.meta.url));
/** Node 22.1+ has module.enableCompileCache; Node 20 does not (the @types/node here are 20's). */
const HAS_COMPILE_CACHE = 'enableCompileCache' in module;

/** The package bin as the image runs it, with its own temp folder (os.tmpdir() reads TMPDIR). */
function runBin(tmp: string, extraEnv: Record<string, string> = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, ...extraEnv };
  delete env.NODE_COMPILE_CACHE; // set, Node would cache by itself, and the bin's call would not be tested
  return spawnSync(process.execPath, [BIN, '--help'], { env, encoding: 'utf8' });
}

/** Files of the compile cache under `tmp` (none when there is no cache folder). */
function cacheFiles(tmp: string): string[] {
  const dir = join(tmp, 'node-compile-cache');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

describe('keygate-shim bin: module compile cache behind a feature check', () => {
  const root = mkdtempSync(join(tmpdir(), 'kg-compile-cache-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it(`${HAS_COMPILE_CACHE ? 'caches the compiled modules in the temp folder' : 'runs without it on this Node'} (${process.version})`, () => {
    const tmp = mkdtempSync(join(root, 'on-'));
    for (const round of ['cold', 'warm']) {
      const r = runBin(tmp);
      assert.equal(r.status, 0, `${round}: ${r.stderr}`);
      assert.match(r.stdout, /^usage: keygate-shim <command>/, round);
      assert.equal(r.stderr, '', `${round}: nothing on stderr`);
    }
    if (HAS_COMPILE_CACHE) assert.ok(cacheFiles(tmp).length > 0, 'the cache holds compiled modules');
    else assert.equal(existsSync(join(tmp, 'node-compile-cache')), false, 'Node 20: no cache folder');
  });

  it('NODE_DISABLE_COMPILE_CACHE=1 turns it off', () => {
    const tmp = mkdtempSync(join(root, 'off-'));
    const r = runBin(tmp, { NODE_DISABLE_COMPILE_CACHE: '1' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(cacheFiles(tmp), []);
  });

  it('a temp folder that cannot be written costs nothing but the cache', () => {
    // A file where the folder should be: no mkdir can make it (tests run as root, so modes would not do).
    const notADir = join(root, 'a-file');
    writeFileSync(notADir, '');
    const r = runBin(notADir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage: keygate-shim/);
    assert.equal(r.stderr, '');
  });
});
