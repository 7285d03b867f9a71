import { unlink } from 'node:fs/promises';
import { KeygateError } from '@keygate/shared/errors';
import { createLockFile, pidAlive, readLockHolder, removeStaleLock } from '../pid-lock-file.js';

export interface FileLockOptions {
  /** Give up (STORE_UNAVAILABLE) after waiting this long. */
  readonly timeoutMs?: number;
  /** A lock older than this is taken over even when its pid still runs (a hung holder). */
  readonly staleMs?: number;
}

/**
 * Runs `fn` holding an exclusive lock file (O_EXCL create, holder pid and time inside), so the
 * processes on one host that share a store write one at a time. A lock whose holder died, or
 * that is older than `staleMs`, is moved aside and taken over.
 */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  opts: FileLockOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const staleMs = opts.staleMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const token = `${process.pid}:${Date.now()}:${Math.random().toString(36).slice(2)}`;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    let created: boolean;
    try {
      created = await createLockFile(lockPath, { at: Date.now(), token });
    } catch (err) {
      throw new KeygateError('STORE_UNAVAILABLE', { cause: err, detail: { lockPath } });
    }
    if (created) break;
    await takeOverIfStale(lockPath, staleMs);
    if (Date.now() > deadline)
      throw new KeygateError('STORE_UNAVAILABLE', { detail: { lockPath, reason: 'lock busy' } });
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}

async function takeOverIfStale(lockPath: string, staleMs: number): Promise<void> {
  const holder = await readLockHolder(lockPath);
  // Being written right now, or just released: look again next round.
  if (holder === undefined) return;
  const pid = typeof holder.pid === 'number' ? holder.pid : -1;
  const at = typeof holder.at === 'number' ? holder.at : 0;
  if (pidAlive(pid) && Date.now() - at < staleMs) return;
  await removeStaleLock(lockPath);
}
