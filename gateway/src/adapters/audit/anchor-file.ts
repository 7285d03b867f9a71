import { readFile } from 'node:fs/promises';
import {
  type AnchorReading,
  type AuditAnchor,
  type AuditAnchorStore,
  parseAnchorText,
} from '../../core/audit/audit-anchor.js';
import { replaceFileDurably } from '../durable-file.js';

/**
 * The audit anchor as a small JSON file outside the audit folder (default `<audit.dir>.anchor.json`),
 * replaced atomically and durably on every write. A PostgreSQL row can implement the same port later.
 */
export class FileAuditAnchorStore implements AuditAnchorStore {
  readonly location: string;

  constructor(path: string) {
    this.location = path;
  }

  /** none when the file does not exist; I/O errors other than that throw. */
  async read(): Promise<AnchorReading> {
    let text: string;
    try {
      text = await readFile(this.location, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
      throw err;
    }
    return parseAnchorText(text);
  }

  async write(anchor: AuditAnchor): Promise<void> {
    await replaceFileDurably(this.location, `${JSON.stringify(anchor)}\n`);
  }
}
