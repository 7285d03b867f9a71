import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createLockFile, pidAlive, readLockHolder, removeStaleLock } from '../pid-lock-file.js';

/** Name of the lock file a gateway holds in its audit folder while it runs. */
export const AUDIT_LOCK_FILE = 'writer.lock';

export type AuditDirLock =
  | { readonly held: true; release(): Promise<void> }
  /** The folder could not be created or written: no lock (the sink starts unavailable). */
  | { readonly held: false; readonly reason: string }
  /** Another live process writes this folder. */
  | { readonly held: false; readonly busyPid: number };

/**
 * Takes the audit folder for this process (O_EXCL lock file with the holder's pid), so that two
 * gateways pointed at one folder cannot interleave two chains in it. A lock whose pid is dead (a
 * crash, SIGKILL) or is this process's own pid (a restarted container) is taken over.
 */
export async function lockAuditDir(dir: string): Promise<AuditDirLock> {
  const path = join(dir, AUDIT_LOCK_FILE);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    return { held: false, reason: (err as NodeJS.ErrnoException).code ?? 'mkdir failed' };
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      if (await createLockFile(path, { at: new Date().toISOString() })) {
        return { held: true, release: () => unlink(path).catch(() => undefined) };
      }
    } catch (err) {
      return { held: false, reason: (err as NodeJS.ErrnoException).code ?? 'lock failed' };
    }
    const pid = (await readLockHolder(path))?.pid;
    if (typeof pid === 'number' && pid !== process.pid && pidAlive(pid)) return { held: false, busyPid: pid };
    await removeStaleLock(path);
  }
  return { held: false, reason: 'lock contended' };
}
