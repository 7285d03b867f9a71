import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Durable file writes shared by the metadata store and the audit log's anchor. */

/** fsync of a folder: makes the names created or renamed in it durable. */
export async function syncFolder(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `path` with `text` atomically and durably (temp file, fsync, rename, fsync of the
 * folder): a reader sees the old or the new content, never a mix, and once this resolves the new
 * content survives a crash or power loss.
 */
export async function replaceFileDurably(path: string, text: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncFolder(dirname(path));
}
