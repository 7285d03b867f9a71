import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

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
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(JSON.stringify({ pid: process.pid, at: new Date().toISOString() }));
      } finally {
        await fh.close();
      }
      return { held: true, release: () => unlink(path).catch(() => undefined) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') return { held: false, reason: code ?? 'lock failed' };
    }
    const pid = await holderPid(path);
    if (pid !== undefined && pid !== process.pid && pidAlive(pid)) return { held: false, busyPid: pid };
    // Stale: move it aside first so two processes taking over cannot delete each other's lock.
    const aside = `${path}.stale.${process.pid}.${Date.now()}`;
    try {
      await rename(path, aside);
      await unlink(aside);
    } catch {
      // Someone else took it over first; try again.
    }
  }
  return { held: false, reason: 'lock contended' };
}

async function holderPid(path: string): Promise<number | undefined> {
  try {
    const holder = JSON.parse(await readFile(path, 'utf8')) as { pid?: unknown };
    return typeof holder.pid === 'number' ? holder.pid : undefined;
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
