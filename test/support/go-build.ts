import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';

/** `go version`'s answer, or undefined when `go` is not on PATH. */
export function goVersion(): string | undefined {
  const r = spawnSync('go', ['version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Where built test tools live: outside the repository, shared by worktrees and reruns. */
export function toolsCache(): string {
  return process.env.KEYGATE_TOOLS_CACHE ?? join(homedir(), '.cache', 'keygate-tools');
}

/**
 * Builds the Go program in `moduleDir` (go.mod, go.sum and *.go at its top) into the tools cache,
 * keyed by a hash of those files, and returns the binary's path. A binary already built from the
 * same files is reused, so reruns cost nothing; the build goes to a temporary name first, so a
 * concurrent run never sees half a binary.
 */
export function buildGoProgram(moduleDir: string): string {
  const files = readdirSync(moduleDir)
    .filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go'))
    .sort();
  const hash = createHash('sha256');
  for (const f of files)
    hash
      .update(f)
      .update('\0')
      .update(readFileSync(join(moduleDir, f)))
      .update('\0');
  const name = basename(moduleDir);
  const dir = join(toolsCache(), `${name}-${hash.digest('hex').slice(0, 16)}`);
  const bin = join(dir, name);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  const r = spawnSync('go', ['build', '-trimpath', '-o', tmp, '.'], {
    cwd: moduleDir,
    encoding: 'utf8',
    env: { ...process.env, CGO_ENABLED: '0' },
  });
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`go build in ${moduleDir} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  }
  renameSync(tmp, bin);
  return bin;
}
