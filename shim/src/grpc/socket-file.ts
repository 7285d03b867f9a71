import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, resolve } from 'node:path';
import { KeygateError } from '@keygate/shared/errors';

/** Accepts `/path`, `unix:///path` or an abstract `@name`; returns a path (absolute unless abstract). */
export function normaliseSocketPath(endpoint: string): string {
  const path = endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : endpoint;
  if (path.startsWith('@') || path.startsWith('/@')) return path.replace(/^\//, '');
  return resolve(path);
}

/** True for an abstract socket, which has no file to create, probe, chmod or remove. */
export function isAbstract(path: string): boolean {
  return path.startsWith('@');
}

/**
 * Makes `path` ready to bind: creates the parent folder; if a socket file is there, a live server
 * behind it means SOCKET_IN_USE, a dead one is removed. Anything else at the path is refused too.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  if (isAbstract(path)) return;
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new KeygateError('SOCKET_IN_USE', { detail: { path, reason: 'not a socket' } });
  if (await isLive(path)) throw new KeygateError('SOCKET_IN_USE', { detail: { path } });
  await unlink(path);
}

/** Sets the socket file's mode after bind (e.g. 0o600). */
export async function setSocketMode(path: string, mode: number): Promise<void> {
  if (!isAbstract(path)) await chmod(path, mode);
}

/** Removes the socket file; a missing file is fine. */
export async function removeSocketFile(path: string): Promise<void> {
  if (isAbstract(path)) return;
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function isLive(path: string): Promise<boolean> {
  return new Promise((done) => {
    const sock = connect(path);
    const timer = setTimeout(() => finish(true), 1000); // something accepted but is silent: treat as live
    function finish(live: boolean): void {
      clearTimeout(timer);
      sock.destroy();
      done(live);
    }
    sock.once('connect', () => finish(true));
    sock.once('error', () => finish(false));
  });
}
