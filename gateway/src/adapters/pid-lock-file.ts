import { open, readFile, rename, unlink } from 'node:fs/promises';

/**
 * The pieces of an O_EXCL lock file that names its holder's pid, shared by the metadata store's
 * write lock and the audit folder's writer lock.
 */

/** Creates `path` exclusively with `holder` as JSON; false when it already exists (other errors throw). */
export async function createLockFile(path: string, holder: Record<string, unknown>): Promise<boolean> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await fh.writeFile(JSON.stringify({ pid: process.pid, ...holder }));
  } finally {
    await fh.close();
  }
  return true;
}

/** What the lock file says about its holder; undefined while it is being written or just gone. */
export async function readLockHolder(path: string): Promise<{ pid?: unknown; at?: unknown } | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as { pid?: unknown; at?: unknown };
  } catch {
    return undefined;
  }
}

/** Removes a stale lock: renamed aside first, so two processes taking over cannot delete each other's fresh lock. */
export async function removeStaleLock(path: string): Promise<void> {
  const aside = `${path}.stale.${process.pid}.${Date.now()}`;
  try {
    await rename(path, aside);
    await unlink(aside);
  } catch {
    // Someone else took it over first.
  }
}

/** True when a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
